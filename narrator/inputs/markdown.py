"""Markdown (markdown-it-py) into a document: markup removed, headings start chapters,
link text kept and link targets dropped, code blocks and raw HTML skipped."""

from __future__ import annotations

import re
from typing import Any

from .model import Builder, Document, clean_text, fold_dateline, normalize_newlines

__all__ = ["parse_markdown"]


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


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
    text = _FRONT_MATTER.sub("", normalize_newlines(text), count=1)
    builder = Builder()
    tokens = _markdown_parser().parse(text)
    heading = False
    level: int | None = None
    first: int | None = None  # the first heading's rank
    row: list[str] | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading = True
            level = int(token.tag[1]) if token.tag[1:].isdigit() else None
            first = first or level
        elif kind == "heading_close":
            heading = False
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            builder.add(", ".join(cell for cell in row if cell))
            row = None
        elif kind == "inline":
            words = clean_text(_inline_text(token))
            if heading:
                builder.start(words or None, level)
            elif row is not None:
                row.append(words)
            else:
                builder.add(words)
        # fence, code_block and html_block are not read out: nothing to do for them.
    document = builder.document(title, source)
    # A dateline above the headline (the first heading, an h1) is read after it.
    return fold_dateline(document) if first == 1 else document
