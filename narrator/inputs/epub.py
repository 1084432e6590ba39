"""EPUB (ebooklib) into a document: the spine's documents in reading order, each a
chapter titled by the table of contents (or its first heading); cover, contents and
copyright pages are not read out."""

from __future__ import annotations

import dataclasses
import io
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
    title_meta = book.get_metadata("DC", "title")
    title = clean_text(title_meta[0][0]) if title_meta and title_meta[0][0] else None
    authors = [clean_text(a[0]) for a in book.get_metadata("DC", "creator") if a and a[0]]
    front = True  # before the first chapter the contents name
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
        if toc_title is not None:
            front = False
        elif front and toc_titles and _frontispiece(root):
            continue
        blocks = list(html_blocks(root))
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
