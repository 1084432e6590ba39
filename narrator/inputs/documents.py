"""Inputs become :class:`Document` s: a title and chapters of paragraphs.

This is the one model the splitter and the stitcher share, whatever the input was:

- plain text: blank lines separate paragraphs, a Markdown-style heading line
  (``# Title``) starts a new chapter;
- Markdown (markdown-it-py): markup removed, headings start chapters, link text kept
  and link targets dropped, code blocks and raw HTML skipped;
- HTML (trafilatura): the article's main text only, navigation, scripts and
  boilerplate dropped, the page title kept, headings start chapters;
- EPUB (ebooklib): the spine's documents in reading order, each a chapter titled by
  the table of contents (or its first heading); headings inside start chapters too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..util.sanitize import text_name
from .epub import parse_epub
from .limits import DEFAULT_MAX_TEXT_BYTES, check_archive, check_text_size, inflate_archive
from .markdown import parse_markdown
from .model import Chapter, Document, parse_text
from .webpage import parse_html

MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
EPUB_SUFFIXES = (".epub",)

__all__ = [
    "Chapter",
    "Document",
    "decode",
    "kind_of",
    "load_document",
    "parse_bytes",
    "parse_epub",
    "parse_html",
    "parse_markdown",
    "parse_text",
]


def decode(data: bytes, *, name: str) -> str:
    """Decode a text file: UTF-8 (with or without BOM), UTF-16 with BOM, else detected.

    Raises :class:`InputError` for binary data or text whose encoding cannot be told.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: invalid UTF-16 at byte {exc.start}") from exc
    if b"\x00" in data:
        raise InputError(f"{name}: looks binary (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None:
        # Short texts fit many legacy code pages equally well; Windows-1252 (a superset of
        # Latin-1) is by far the likeliest, so it wins a tie.
        western = next((m for m in matches if m.encoding == "cp1252"), None)
        if western is not None and western.chaos <= best.chaos:
            best = western
    if best is None or best.encoding is None:
        raise InputError(
            f"{name}: not UTF-8 (invalid byte at offset {utf8_error.start}) and its "
            "encoding could not be detected; convert it to UTF-8"
        )
    return str(best)


def parse_bytes(
    data: bytes,
    *,
    kind: str,
    source: str,
    fallback_title: str | None = None,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> Document:
    """Build a document from raw bytes of one ``kind``: text, markdown, html or epub.

    ``fallback_title`` names a document that has no title of its own. An EPUB that
    inflates too much, or a document with more than ``max_text_bytes`` of text, is an
    :class:`InputError` (see :mod:`narrator.inputs.limits`).
    """
    if kind == "epub":
        check_archive(data, source=source, max_text_bytes=max_text_bytes)
        data = inflate_archive(data, source=source)
        doc = parse_epub(data, source=source)
    elif kind == "html":
        doc = parse_html(data, source=source, url=source if "://" in source else None)
    elif kind == "markdown":
        doc = parse_markdown(decode(data, name=source), source=source)
    elif kind == "text":
        doc = parse_text(decode(data, name=source), source=source)
    else:
        raise InputError(f"{source}: cannot read {kind} documents")
    # Characters, not bytes: a cheap bound that needs no encoding of a huge text.
    size = sum(len(c.title or "") + sum(map(len, c.paragraphs)) for c in doc.chapters)
    check_text_size(size, source=source, max_text_bytes=max_text_bytes, what="text in it")
    if doc.title == "Untitled" and fallback_title:
        doc = replace(doc, title=fallback_title)
    return doc


def _read(path: Path, *, limit: int, expect: tuple[int, int] | None) -> bytes:
    """The bytes of ``path``, checked against ``expect`` on the open file itself (what
    was checked is what is read: no window between a check and the open)."""
    # Non-blocking: a FIFO swapped in for a listed file must not hang the open.
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if expect is not None else 0)
    with open(os.open(path, flags), "rb") as fh:
        found = os.fstat(fh.fileno())
        if expect is not None and (
            not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != expect
        ):
            raise InputError(f"{path}: changed since its folder was listed (a link swapped in?)")
        check_text_size(found.st_size, source=str(path), max_text_bytes=limit, what="file")
        data = fh.read(limit + 1)  # it may have grown since
    check_text_size(len(data), source=str(path), max_text_bytes=limit, what="file")
    return data


def kind_of(path: Path | str) -> str:
    """The reader for a file name: markdown, html, epub, else text."""
    suffix = Path(path).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in EPUB_SUFFIXES:
        return "epub"
    return "text"


def load_document(
    path: Path,
    *,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    expect: tuple[int, int] | None = None,
) -> Document:
    """Read a file into a document: Markdown, HTML and EPUB by suffix, anything else as text.

    It is titled by its own title or first heading, else by its file name. A file over
    four times ``max_text_bytes`` (room for markup) is refused unread. ``expect`` is the
    (device, inode) a folder's entry had when it was listed: the file opened must be
    that regular file, else it was swapped (for a link elsewhere, a FIFO) and is refused.
    """
    try:
        data = _read(path, limit=4 * max_text_bytes, expect=expect)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    fallback = text_name(path.stem).replace("_", " ").replace("-", " ")
    return parse_bytes(
        data,
        kind=kind_of(path),
        source=str(path),
        fallback_title=fallback,
        max_text_bytes=max_text_bytes,
    )
