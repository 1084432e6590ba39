"""EPUB (ebooklib) into a document: the spine's documents in reading order, each a
chapter titled by the table of contents (or its first heading); cover, contents and
copyright pages are not read out. A title page is not a chapter: the book opens with
an announcement of its title and author instead, as a narrated audiobook does ("The
Harbour Light. By Margaret Hale."). A title page is one its EPUB names so (EPUB 3
``epub:type`` or landmarks ``titlepage``, EPUB 2 guide ``title-page``), or, before
anything is read, a short page of short lines that names the book's title or author
(see docs/formats.md)."""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..util.sanitize import strip_controls
from .model import Builder, Document, clean_text
from .webpage import html_blocks

__all__ = ["parse_epub"]


# Spine items that are not the book's text: what a listener never hears read out.
_NOT_READ_TYPES = (
    "cover", "toc", "copyright-page", "landmarks", "loi", "lot", "index", "imprint",
    "frontispiece",
)  # fmt: skip
_COPYRIGHT = re.compile(r"all rights reserved|\bISBN\b|©|\(c\) \d{4}", re.IGNORECASE)
# Pages before the first chapter this short are front matter: a picture with its caption
# (a frontispiece) is not read; a title page is, without its copyright line.
_FRONT_PAGE_CHARS = 600
_PICTURE = ("img", "image", "svg", "figure")
_COPYRIGHT_LINE = re.compile(r"\bcopyright\b|©|all rights reserved|\bISBN\b", re.IGNORECASE)
# Title pages by their EPUB type (EPUB 3 and its landmarks; the guide's is title-page).
_TITLE_PAGE_TYPES = frozenset(("titlepage", "halftitlepage", "title-page"))
_LABELLED_CHARS = 1500  # a page named a title page but longer than this is read after all
_TITLE_LINES = 12  # a title page holds a few short lines: title, author, publisher...
_LINE_CHARS = 80
_BY = re.compile(r"^by\s+(.+)$", re.IGNORECASE)
_NAME_CHARS = 200  # the announcement's title and author, each at most (as the tags')


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
    text = clean_text(" ".join(root.itertext()))
    links = [
        a
        for a in root.iter("a")
        if (a.get("href") or "").partition("#")[0].rsplit("/", 1)[-1] in spine
    ]
    linked = sum(len(clean_text(" ".join(a.itertext()))) for a in links)
    if len(links) >= 2 and linked >= 0.6 * len(text.replace(" ", "")):
        return True  # a contents page: its words are the other chapters' titles
    return len(text) < 1500 and len(_COPYRIGHT.findall(text)) >= 2


def _frontispiece(root: Any) -> bool:
    """A short page before the first chapter that holds a picture and no heading: the
    picture's caption is not a chapter."""
    text = clean_text(" ".join(root.itertext()))
    tags = {e.tag.rpartition("}")[2] for e in root.iter() if isinstance(e.tag, str)}
    headed = any(f"h{n}" in tags for n in range(1, 7))
    return len(text) < _FRONT_PAGE_CHARS and bool(tags & set(_PICTURE)) and not headed


def _labels(book: Any, epub: Any) -> dict[str, set[str]]:
    """Each spine file's types as the book names them: the EPUB 2 guide's references and
    the EPUB 3 landmarks (``<nav epub:type="landmarks">`` in its navigation document)."""
    from lxml import html as lxml_html

    labels: dict[str, set[str]] = {}
    for ref in book.guide:
        name = str(ref.get("href") or "").partition("#")[0]
        labels.setdefault(name, set()).add(str(ref.get("type") or "").lower())
    for nav in (item for item in book.get_items() if isinstance(item, epub.EpubNav)):
        try:
            root = lxml_html.fromstring(nav.get_content())
        except Exception:  # a broken navigation document names nothing
            continue
        folder = posixpath.dirname(nav.get_name())
        for element in root.iter("nav"):
            if "landmarks" not in (element.get("epub:type") or "").split():
                continue
            for link in element.iter("a"):
                href = (link.get("href") or "").partition("#")[0]
                if href:
                    name = posixpath.normpath(posixpath.join(folder, href))
                    kinds = (link.get("epub:type") or "").lower().split()
                    labels.setdefault(name, set()).update(kinds)
    return labels


def _types(root: Any) -> set[str]:
    """The ``epub:type`` words anywhere in a page."""
    return {
        kind
        for element in root.iter()
        if isinstance(element.tag, str)
        for kind in (element.get("epub:type") or "").lower().split()
    }


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _title_page(
    blocks: list[tuple[bool, str]], kinds: set[str], title: str | None, authors: list[str]
) -> bool:
    """Whether a page (its ``blocks``, its ``kinds`` from its EPUB types and the book's
    labels) is the book's title page rather than text to read."""
    text = sum(len(line) for _, line in blocks)
    if kinds & _TITLE_PAGE_TYPES:
        return text < _LABELLED_CHARS  # named so, unless it is plainly a chapter
    lines = [line for _, line in blocks]
    if not lines or len(lines) > _TITLE_LINES or text > _FRONT_PAGE_CHARS:
        return False
    for line in lines:  # short lines, no prose: a sentence of five words or more is text
        if len(line) > _LINE_CHARS or (line.endswith((".", "!", "?")) and len(line.split()) >= 5):
            return False
    said = {_words(line) for line in lines} | {_words(m[1]) for m in map(_BY.match, lines) if m}
    names = {_words(name) for name in (title, *authors) if name}
    return bool(names & said)


def _spoken(text: str) -> str:
    """A title page's line as it is said: SHOUTED CAPITALS in title case."""
    return text.title() if text.isupper() else text


def _announcement(title: str | None, authors: list[str], blocks: list[tuple[bool, str]]) -> str:
    """What opens the book in place of its title page: "Title. By Author." (the package's
    title and authors, else the page's first line and its "By ..." line)."""
    lines = [line for _, line in blocks if not _COPYRIGHT_LINE.search(line)]
    name = title or (_spoken(lines[0]) if lines else "")
    byline = next((m[1] for m in map(_BY.match, lines) if m), None)
    by = ", ".join(dict.fromkeys(authors)) or (_spoken(byline) if byline else "")
    name, by = name[:_NAME_CHARS].strip(), by[:_NAME_CHARS].strip()  # a document is not trusted
    if not name or not by:
        return name
    stop = "" if name[-1] in ".!?" else "."
    return f"{name}{stop} By {by}."


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
    labels = _labels(book, epub)
    guide = {name for name, kinds in labels.items() if kinds & {"cover", "toc", "copyright-page"}}
    spine_names = set()
    for entry in book.spine:
        found = book.get_item_with_id(entry[0] if isinstance(entry, tuple) else entry)
        if found is not None:
            spine_names.add(found.get_name().rsplit("/", 1)[-1])
    title_meta = book.get_metadata("DC", "title")
    title = clean_text(title_meta[0][0]) if title_meta and title_meta[0][0] else None
    authors = [clean_text(a[0]) for a in book.get_metadata("DC", "creator") if a and a[0]]
    front = True  # before the first chapter the contents name
    announced = False  # the title page's announcement: once, at the start
    builder = Builder()
    for entry in book.spine:
        idref, linear = entry if isinstance(entry, tuple) else (entry, "yes")
        item = book.get_item_with_id(idref)
        if item is None or linear == "no" or isinstance(item, epub.EpubNav):
            continue
        if item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        content = item.get_content()
        if not content.strip():
            if (getattr(item, "content", None) or b"").strip():
                # ebooklib answers b"" for a chapter it cannot parse: not an empty one
                builder.warn(f"chapter {item.get_name()} could not be parsed; it was left out")
            continue
        try:
            root = lxml_html.fromstring(content)
        except Exception as exc:  # an unparsable chapter is skipped, not the whole book
            builder.warn(
                f"chapter {item.get_name()} could not be parsed ({type(exc).__name__}: {exc}); "
                "it was left out"
            )
            continue
        if _not_read(root, item.get_name(), guide, spine_names):
            continue
        toc_title = toc_titles.get(item.get_name())
        blocks = list(html_blocks(root))
        opening = not builder.chapters and not builder.paragraphs and builder.heading is None
        kinds = _types(root) | labels.get(item.get_name(), set())
        titled = toc_title is None or "title" in toc_title.casefold()
        if (
            (opening or kinds & _TITLE_PAGE_TYPES)
            and titled
            and _title_page(blocks, kinds if kinds & _TITLE_PAGE_TYPES else set(), title, authors)
        ):
            if opening and not announced:
                builder.add(_announcement(title, authors, blocks))
                announced = True
            continue
        if toc_title is not None:
            front = False
        elif front and toc_titles and _frontispiece(root):
            continue
        if front and toc_title is None:  # a title page: its copyright line is not read
            blocks = [(h, text) for h, text in blocks if not _COPYRIGHT_LINE.search(text)]
        # The chapter starts here, titled by the contents, unless its first heading says it.
        if not blocks or not blocks[0][0]:
            builder.start(toc_title)
        for is_heading, text in blocks:
            if is_heading:
                builder.start(text)
            else:
                builder.add(text)
    document = builder.document(title, source)
    if authors:  # the tags' artist: "A. Writer", or "A. Writer, B. Other"; a document
        # is not trusted: no control characters, and no longer than a tag needs
        author = " ".join(strip_controls(", ".join(dict.fromkeys(authors))).split())[:200]
        document = dataclasses.replace(document, author=author or None)
    return document


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
            title = clean_text(getattr(entry, "title", None) or "")
            if not href or not title:
                continue
            name = href.partition("#")[0]
            if name not in seen:
                seen.add(name)
                yield name, title

    yield from walk(toc)
