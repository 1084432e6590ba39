"""The one model the splitter and the stitcher share: a :class:`Document` of
:class:`Chapter` s, and plain text read into it.

Every reader (:mod:`.markdown`, :mod:`.webpage`, :mod:`.epub`) fills a
:class:`Builder`; plain text has its own line-by-line reader here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..util.sanitize import clean_line
from .speakable import plain_headings, speakable

__all__ = ["MAX_WARNINGS", "Chapter", "Document", "bounded", "fold_dateline", "parse_text"]

# A hostile document may break every chapter: its report names the first few.
MAX_WARNINGS = 10


def bounded(warnings: list[str]) -> tuple[str, ...]:
    """At most :data:`MAX_WARNINGS` of ``warnings``, the last saying how many were left."""
    if len(warnings) <= MAX_WARNINGS:
        return tuple(warnings)
    more = len(warnings) - MAX_WARNINGS + 1
    return (*warnings[: MAX_WARNINGS - 1], f"and {more} more warnings like these")


_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n\s*")
_SPACES = re.compile(r"\s+")


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
    detect it from the text (``--lang auto``). ``warnings`` name what the reader left
    out (a chapter it could not parse), one clean line each: the run's report shows them.
    """

    title: str
    chapters: tuple[Chapter, ...]
    source: str = "<text>"
    lang: str | None = None
    warnings: tuple[str, ...] = ()
    author: str | None = None  # from the document itself (an EPUB's dc:creator), for tags

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


class Builder:
    """Collects headings and paragraphs into chapters; empty ones are dropped."""

    def __init__(self) -> None:
        self.chapters: list[Chapter] = []
        self.heading: str | None = None
        self.paragraphs: list[str] = []
        self.first_heading: str | None = None
        self.warnings: list[str] = []
        self._level: int | None = None  # the rank of the heading that opened the chapter

    def start(self, title: str | None, level: int | None = None) -> None:
        """A heading: a new chapter. ``level`` is its rank (1 for ``h1``) where known."""
        pending = kicker = None
        if self.heading and not self.paragraphs:
            pending, self.heading = self.heading, None  # folded into the next title
            if not self.chapters and _kicker(pending, self._level, level):
                kicker, pending = pending, None
        self.close()
        self.heading = _fold(pending, speakable(clean_text(title)) if title else None)
        self._level = level
        if kicker is not None:  # read just after the headline, in its chapter
            self.paragraphs.append(kicker)
            if self.first_heading == kicker:
                self.first_heading = None
        self.first_heading = self.first_heading or self.heading

    def add(self, paragraph: str) -> None:
        text = speakable(clean_text(paragraph))
        if text:
            self.paragraphs.append(text)

    def close(self) -> None:
        if self.heading or self.paragraphs:
            index = len(self.chapters)
            self.chapters.append(Chapter(index, self.heading, tuple(self.paragraphs)))
        self.heading, self.paragraphs = None, []

    def warn(self, message: str) -> None:
        """Note what was left out, for the report (the first few, then how many more)."""
        self.warnings.append(clean_line(message))

    def document(self, title: str | None, source: str) -> Document:
        self.close()
        return Document(
            title or self.first_heading or "Untitled",
            tuple(self.chapters),
            source,
            warnings=bounded(self.warnings),
        )


# A line above the headline this short, not a sentence, is a dateline or a kicker
# ("October 22, 2019 report", "Opinion"): it belongs to the article, not a chapter.
DATELINE_CHARS = 80


def _kicker(heading: str, level: int | None, next_level: int | None) -> bool:
    """Whether ``heading``, first in the document with nothing under it, is a dateline or
    a kicker over the headline that follows: a short line of lower rank than it (an
    ``h4`` over the ``h1``), not a part title over its first chapter (``h1`` over ``h2``)."""
    if level is None or next_level is None or level <= next_level:
        return False
    return len(heading) <= DATELINE_CHARS and not heading.rstrip().endswith((".", "!", "?"))


def fold_dateline(doc: Document) -> Document:
    """``doc`` with the short untitled lines before its first heading (a dateline) read
    just after that heading, in its chapter, instead of as a chapter of their own."""
    chapters = doc.chapters
    if len(chapters) < 2 or chapters[0].title is not None or not chapters[1].title:
        return doc
    lines = chapters[0].paragraphs
    if len(lines) > 2 or any(
        len(line) > DATELINE_CHARS or line.rstrip().endswith((".", "!", "?")) for line in lines
    ):
        return doc
    first = Chapter(0, chapters[1].title, (*lines, *chapters[1].paragraphs))
    rest = [Chapter(n, c.title, c.paragraphs) for n, c in enumerate(chapters[2:], start=1)]
    return dataclasses.replace(doc, chapters=(first, *rest))


def _fold(heading: str | None, subheading: str | None) -> str | None:
    """A heading with nothing under it joins the next one ("Part One. Chapter 1"), so no
    chapter holds only its title."""
    if not heading:
        return subheading
    if not subheading:
        return heading
    stop = "" if heading[-1] in ".!?:;。！？：；" else "."
    return f"{heading}{stop} {subheading}"


def clean_text(text: str) -> str:
    """One paragraph on one line: runs of whitespace become one space."""
    return _SPACES.sub(" ", text).strip()


def _paragraphs(lines: list[str]) -> list[str]:
    text = "\n".join(lines).strip()
    if not text:
        return []
    spoken = (speakable(p) for p in _BLANK_LINES.split(text))
    return [p for p in spoken if p]


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def parse_text(text: str, *, title: str | None = None, source: str = "<text>") -> Document:
    """Build a document from plain text; headings (``# ...``) start chapters."""
    text = plain_headings(normalize_newlines(text))  # a README in reST or setext, too
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
