"""Inputs become :class:`Document` s: a title and chapters of paragraphs.

This is the one model the splitter and the stitcher share. Plain text is read as is:
blank lines separate paragraphs, and a Markdown-style heading line (``# Title``)
starts a new chapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n\s*")


@dataclass(frozen=True, slots=True)
class Chapter:
    """A run of paragraphs under one heading (``title`` is None before the first one)."""

    index: int
    title: str | None
    paragraphs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """One input: it becomes one audiobook."""

    title: str
    chapters: tuple[Chapter, ...]
    source: str = "<text>"

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


def _paragraphs(lines: list[str]) -> list[str]:
    text = "\n".join(lines).strip()
    if not text:
        return []
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def parse_text(text: str, *, title: str | None = None, source: str = "<text>") -> Document:
    """Build a document from plain text; headings (``# ...``) start chapters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
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
            close()
            heading, body = match.group(2), []
            first_heading = first_heading or heading
        else:
            body.append(line)
    close()
    return Document(title or first_heading or "Untitled", tuple(chapters), source)


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

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise InputError(
            f"{name}: not UTF-8 (invalid byte at offset {utf8_error.start}) and its "
            "encoding could not be detected; convert it to UTF-8"
        )
    return str(best)


def load_document(path: Path) -> Document:
    """Read a text file into a document titled by its first heading, else its file name."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    text = decode(data, name=str(path))
    doc = parse_text(text, source=str(path))
    if doc.title == "Untitled":
        doc = Document(path.stem.replace("_", " ").replace("-", " "), doc.chapters, doc.source)
    return doc
