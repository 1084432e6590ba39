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

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from .limits import DEFAULT_MAX_TEXT_BYTES, check_archive, check_text_size
from .speakable import plain_headings, speakable

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n\s*")
_SPACES = re.compile(r"\s+")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)

MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
EPUB_SUFFIXES = (".epub",)


@dataclass(frozen=True, slots=True)
class Chapter:
    """A run of paragraphs under one heading (``title`` is None before the first one)."""

    index: int
    title: str | None
    paragraphs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """One input: it becomes one audiobook.

    ``lang`` is the pysbd language code to split it with; None lets the pipeline
    detect it from the text (``--lang auto``).
    """

    title: str
    chapters: tuple[Chapter, ...]
    source: str = "<text>"
    lang: str | None = None

    @property
    def text(self) -> str:
        """Everything that is spoken, in order (headings included)."""
        parts: list[str] = []
        for chapter in self.chapters:
            if chapter.title:
                parts.append(chapter.title)
            parts.extend(chapter.paragraphs)
        return "\n\n".join(parts)

    @property
    def is_empty(self) -> bool:
        return not any(c.title or c.paragraphs for c in self.chapters)


class _Builder:
    """Collects headings and paragraphs into chapters; empty ones are dropped."""

    def __init__(self) -> None:
        self.chapters: list[Chapter] = []
        self.heading: str | None = None
        self.paragraphs: list[str] = []
        self.first_heading: str | None = None

    def start(self, title: str | None) -> None:
        pending = None
        if self.heading and not self.paragraphs:
            pending, self.heading = self.heading, None  # folded into the next title
        self.close()
        self.heading = _fold(pending, speakable(_clean(title)) if title else None)
        self.first_heading = self.first_heading or self.heading

    def add(self, paragraph: str) -> None:
        text = speakable(_clean(paragraph))
        if text:
            self.paragraphs.append(text)

    def close(self) -> None:
        if self.heading or self.paragraphs:
            index = len(self.chapters)
            self.chapters.append(Chapter(index, self.heading, tuple(self.paragraphs)))
        self.heading, self.paragraphs = None, []

    def document(self, title: str | None, source: str) -> Document:
        self.close()
        return Document(title or self.first_heading or "Untitled", tuple(self.chapters), source)


def _fold(heading: str | None, subheading: str | None) -> str | None:
    """A heading with nothing under it joins the next one ("Part One. Chapter 1"), so no
    chapter holds only its title."""
    if not heading:
        return subheading
    if not subheading:
        return heading
    stop = "" if heading[-1] in ".!?:;。！？：；" else "."
    return f"{heading}{stop} {subheading}"


def _clean(text: str) -> str:
    """One paragraph on one line: runs of whitespace become one space."""
    return _SPACES.sub(" ", text).strip()


def _paragraphs(lines: list[str]) -> list[str]:
    text = "\n".join(lines).strip()
    if not text:
        return []
    spoken = (speakable(p) for p in _BLANK_LINES.split(text))
    return [p for p in spoken if p]


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def parse_text(text: str, *, title: str | None = None, source: str = "<text>") -> Document:
    """Build a document from plain text; headings (``# ...``) start chapters."""
    text = plain_headings(_normalize_newlines(text))  # a README in reST or setext, too
    chapters: list[Chapter] = []
    heading: str | None = None
    body: list[str] = []
    first_heading: str | None = None

    def close() -> None:
        paragraphs = _paragraphs(body)
        if heading is not None or paragraphs:
            chapters.append(Chapter(len(chapters), heading, tuple(paragraphs)))

    for line in text.split("\n"):
        match = _HEADING.match(line)
        if match:
            if heading is not None and not _paragraphs(body):
                heading, body = _fold(heading, speakable(match.group(2))), []
                continue
            close()
            heading, body = speakable(match.group(2)), []
            first_heading = first_heading or heading
        else:
            body.append(line)
    close()
    return Document(title or first_heading or "Untitled", tuple(chapters), source)


# --- Markdown ---------------------------------------------------------------------------


def _markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _inline_text(token: Any) -> str:
    """The words of an inline token: link text without its URL, no images, no raw HTML."""
    parts: list[str] = []
    href: str | None = None
    link_text: list[str] = []
    for child in token.children or ():
        kind = child.type
        if kind == "link_open":
            href, link_text = str(child.attrGet("href") or ""), []
            continue
        if kind == "link_close":
            words = "".join(link_text)
            # An autolink's text is its URL: nothing worth reading out.
            if words.strip() and words.strip() != href and f"mailto:{words.strip()}" != href:
                parts.append(words)
            href = None
            continue
        if kind in ("text", "code_inline"):
            piece = child.content
        elif kind in ("softbreak", "hardbreak"):
            piece = " "
        else:  # images, raw HTML, emphasis markers
            continue
        (link_text if href is not None else parts).append(piece)
    return "".join(parts)


def parse_markdown(text: str, *, title: str | None = None, source: str = "<markdown>") -> Document:
    """Build a document from Markdown: headings start chapters, markup is removed."""
    text = _FRONT_MATTER.sub("", _normalize_newlines(text), count=1)
    builder = _Builder()
    tokens = _markdown_parser().parse(text)
    heading = False
    row: list[str] | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading = True
        elif kind == "heading_close":
            heading = False
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            builder.add(", ".join(cell for cell in row if cell))
            row = None
        elif kind == "inline":
            words = _clean(_inline_text(token))
            if heading:
                builder.start(words or None)
            elif row is not None:
                row.append(words)
            else:
                builder.add(words)
        # fence, code_block and html_block are not read out: nothing to do for them.
    return builder.document(title, source)


# --- HTML -------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "p div li dd dt blockquote figcaption td th address section article main "
    "aside header footer nav ul ol dl table tr tbody thead tfoot body".split()
)
_HEADING_TAGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))
_SKIP_TAGS = frozenset(
    "script style noscript template svg math head pre nav button form select "
    "textarea iframe object audio video canvas".split()
)


def parse_html(
    data: bytes | str, *, title: str | None = None, source: str = "<html>", url: str | None = None
) -> Document:
    """Build a document from a web page: the article's text, headings as chapters.

    Raises :class:`InputError` when the page holds no article text.
    """
    import trafilatura
    from lxml import etree

    with warnings.catch_warnings():
        # htmldate guesses the page date with dateparser, which warns about its own
        # deprecated calls; the date is not used.
        warnings.simplefilter("ignore")
        xml = trafilatura.extract(
            data,
            url=url,
            output_format="xml",
            include_formatting=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            with_metadata=True,
            favor_recall=True,
        )
    if not xml:
        raise InputError(f"{source}: no article text found on the page")
    root = etree.fromstring(xml.encode())
    main = root.find("main")
    builder = _Builder()
    if main is not None:
        for element in main:
            _add_trafilatura_block(builder, element)
    page_title = title or _clean(root.get("title") or "") or None
    doc = builder.document(page_title, source)
    if doc.is_empty:
        raise InputError(f"{source}: no article text found on the page")
    return doc


def _add_trafilatura_block(builder: _Builder, element: Any) -> None:
    tag = element.tag
    if tag == "head":
        builder.start(_clean("".join(element.itertext())) or None)
    elif tag in ("list", "table", "quote", "div"):
        for child in element:
            _add_trafilatura_block(builder, child)
    elif tag == "row":
        builder.add(", ".join(_clean("".join(c.itertext())) for c in element))
    elif tag in ("code", "graphic"):
        return
    else:  # p, item, cell, lb-separated text and anything trafilatura adds later
        builder.add("".join(element.itertext()))


def _html_blocks(root: Any) -> Iterator[tuple[bool, str]]:
    """(is_heading, text) for every block of an (X)HTML tree, in document order."""
    pending: list[str] = []

    def flush() -> Iterator[tuple[bool, str]]:
        text = _clean("".join(pending))
        pending.clear()
        if text:
            yield False, text

    def walk(element: Any) -> Iterator[tuple[bool, str]]:
        tag = _local_name(element)
        if tag in _SKIP_TAGS or _is_note_mark(element, tag):
            pending.append(" ")  # its tail still counts
        elif tag in _HEADING_TAGS:
            yield from flush()
            text = _clean("".join(element.itertext()))
            if text:
                yield True, text
        elif tag in _BLOCK_TAGS:
            yield from flush()
            pending.append(element.text or "")
            for child in element:
                yield from walk(child)
            yield from flush()
        elif tag == "br":
            pending.append(" ")
        else:
            pending.append(element.text or "")
            for child in element:
                yield from walk(child)
        if element.tail:
            pending.append(element.tail)

    yield from walk(root)
    yield from flush()


_NOTE_MARK = re.compile(r"^\W{0,2}[\d*†‡§¶]{1,3}\W{0,2}$")


def _is_note_mark(element: Any, tag: str) -> bool:
    """A footnote's mark in the text or its way back (``1``, ``*``): nothing to say."""
    kind = element.get("epub:type") or element.get("role") or ""
    if any(word in kind for word in ("noteref", "backlink", "doc-noteref", "doc-backlink")):
        return True
    if tag not in ("a", "sup"):
        return False
    text = "".join(element.itertext()).strip()
    if not _NOTE_MARK.match(text):
        return False
    link = element if tag == "a" else element.find(".//a")
    return tag == "sup" or (link is not None and "#" in (link.get("href") or ""))


# Spine items that are not the book's text: what a listener never hears read out.
_NOT_READ_TYPES = ("cover", "toc", "copyright-page", "landmarks", "loi", "lot", "index")
_COPYRIGHT = re.compile(r"all rights reserved|\bISBN\b|©|\(c\) \d{4}", re.IGNORECASE)


def _not_read(root: Any, name: str, guide: set[str], spine: set[str]) -> bool:
    """Cover pages, tables of contents and copyright pages (by their EPUB type, the
    guide, or their shape: mostly links to other chapters, or a short legal notice)."""
    if name in guide:
        return True
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        kinds = (element.get("epub:type") or "").split()
        if any(kind in _NOT_READ_TYPES for kind in kinds):
            return True
    text = _clean(" ".join(root.itertext()))
    links = [
        a
        for a in root.iter("a")
        if (a.get("href") or "").partition("#")[0].rsplit("/", 1)[-1] in spine
    ]
    linked = sum(len(_clean(" ".join(a.itertext()))) for a in links)
    if len(links) >= 2 and linked >= 0.6 * len(text.replace(" ", "")):
        return True  # a contents page: its words are the other chapters' titles
    return len(text) < 1500 and len(_COPYRIGHT.findall(text)) >= 2


def _local_name(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return "#comment"
    return tag.rpartition("}")[2].lower()


# --- EPUB -------------------------------------------------------------------------------


def parse_epub(data: bytes, *, source: str = "<epub>") -> Document:
    """Build a document from an EPUB: spine order, chapters titled by the table of contents.

    Raises :class:`InputError` for a file that is not a readable EPUB.
    """
    import ebooklib
    from ebooklib import epub
    from lxml import html as lxml_html

    try:
        with warnings.catch_warnings():
            # ebooklib warns about its own option defaults on every read.
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    except Exception as exc:  # ebooklib raises bare zipfile/KeyError/EpubException alike
        raise InputError(f"{source}: not a readable EPUB ({exc})") from exc
    toc_titles = dict(_toc_entries(book.toc))
    guide = {
        str(ref.get("href", "")).partition("#")[0]
        for ref in book.guide
        if ref.get("type") in ("cover", "toc", "copyright-page")
    }
    spine_names = set()
    for entry in book.spine:
        found = book.get_item_with_id(entry[0] if isinstance(entry, tuple) else entry)
        if found is not None:
            spine_names.add(found.get_name().rsplit("/", 1)[-1])
    builder = _Builder()
    for entry in book.spine:
        idref, linear = entry if isinstance(entry, tuple) else (entry, "yes")
        item = book.get_item_with_id(idref)
        if item is None or linear == "no" or isinstance(item, epub.EpubNav):
            continue
        if item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        content = item.get_content()
        if not content.strip():
            continue
        try:
            root = lxml_html.fromstring(content)
        except Exception:  # an unparsable chapter is skipped, not the whole book
            continue
        if _not_read(root, item.get_name(), guide, spine_names):
            continue
        blocks = list(_html_blocks(root))
        toc_title = toc_titles.get(item.get_name())
        # The chapter starts here, titled by the contents, unless its first heading says it.
        if not blocks or not blocks[0][0]:
            builder.start(toc_title)
        for is_heading, text in blocks:
            if is_heading:
                builder.start(text)
            else:
                builder.add(text)
    metadata = book.get_metadata("DC", "title")
    title = _clean(metadata[0][0]) if metadata and metadata[0][0] else None
    return builder.document(title, source)


def _toc_entries(toc: Any) -> Iterator[tuple[str, str]]:
    """(file name, title) for every table-of-contents entry, first one per file winning."""
    seen: set[str] = set()

    def walk(entries: Any) -> Iterator[tuple[str, str]]:
        for entry in entries:
            if isinstance(entry, tuple):  # (Section, [children])
                section, children = entry
                yield from walk([section])
                yield from walk(children)
                continue
            href = getattr(entry, "href", None)
            title = _clean(getattr(entry, "title", None) or "")
            if not href or not title:
                continue
            name = href.partition("#")[0]
            if name not in seen:
                seen.add(name)
                yield name, title

    yield from walk(toc)


# --- files ------------------------------------------------------------------------------


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


def load_document(path: Path, *, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> Document:
    """Read a file into a document: Markdown, HTML and EPUB by suffix, anything else as text.

    It is titled by its own title or first heading, else by its file name. A file over
    four times ``max_text_bytes`` (room for markup) is refused unread.
    """
    try:
        check_text_size(
            path.stat().st_size, source=str(path), max_text_bytes=4 * max_text_bytes, what="file"
        )
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    fallback = path.stem.replace("_", " ").replace("-", " ")
    return parse_bytes(
        data,
        kind=kind_of(path),
        source=str(path),
        fallback_title=fallback,
        max_text_bytes=max_text_bytes,
    )
