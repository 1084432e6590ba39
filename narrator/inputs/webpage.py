"""HTML into a document: trafilatura keeps a web page's article text (navigation,
scripts and boilerplate dropped); :func:`html_blocks` walks an (X)HTML tree for EPUB
chapters."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from .model import Builder, Document, clean_text, fold_dateline

__all__ = ["parse_html"]


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
    builder = Builder()
    if main is not None:
        for element in main:
            _add_trafilatura_block(builder, element)
    page_title = title or clean_text(root.get("title") or "") or None
    doc = fold_dateline(builder.document(page_title, source))
    if doc.is_empty:
        raise InputError(f"{source}: no article text found on the page")
    return doc


def _add_trafilatura_block(builder: Builder, element: Any) -> None:
    tag = element.tag
    if tag == "head":
        rend = element.get("rend") or ""
        level = int(rend[1]) if re.fullmatch(r"h[1-6]", rend) else None
        builder.start(clean_text("".join(element.itertext())) or None, level)
    elif tag in ("list", "table", "quote", "div"):
        for child in element:
            _add_trafilatura_block(builder, child)
    elif tag == "row":
        builder.add(", ".join(clean_text("".join(c.itertext())) for c in element))
    elif tag in ("code", "graphic"):
        return
    else:  # p, item, cell, lb-separated text and anything trafilatura adds later
        builder.add("".join(element.itertext()))


def html_blocks(root: Any) -> Iterator[tuple[bool, str]]:
    """(is_heading, text) for every block of an (X)HTML tree, in document order."""
    pending: list[str] = []

    def flush() -> Iterator[tuple[bool, str]]:
        text = clean_text("".join(pending))
        pending.clear()
        if text:
            yield False, text

    def walk(element: Any) -> Iterator[tuple[bool, str]]:
        tag = _local_name(element)
        if tag in _SKIP_TAGS or _is_note_mark(element, tag):
            pending.append(" ")  # its tail still counts
        elif tag in _HEADING_TAGS:
            yield from flush()
            text = clean_text("".join(element.itertext()))
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


def _local_name(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return "#comment"
    return tag.rpartition("}")[2].lower()
