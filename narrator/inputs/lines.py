"""Line breaks inside a plain-text paragraph: a wrap, or a line meant as a line.

Plain text gives no markup for a list, a poem or an address, only line breaks, and
hard-wrapped prose has line breaks too. A break is kept as a sentence boundary (a
pause when read, a preferred place to cut a chunk) when:

- the next line starts a list item (``•``, ``-``, ``1.``, ``a)``, ``一、`` ...);
- in a paragraph that is not wrapped prose, the next line starts with a capital or a
  digit, or, in a script without case (Han), the line before ends in punctuation;
- in wrapped prose, the line before is short (the break was not forced by the width)
  and the next starts as a line does.

A line that ends a sentence (``.`` ``!`` ``?`` ``。`` ...) needs nothing more: the
sentence splitter cuts there anyway, so its break is joined like a wrap.

A paragraph is wrapped prose when its longest line is at least :data:`WRAP_WIDTH`
columns (a Han character is two) and nearly every line but the last reaches 70% of it:
that is what a fixed-width wrap looks like, and German capitals or a name at the
start of a wrapped line must not break it up. Verse, addresses and lists of short
lines are never that wide.
"""

from __future__ import annotations

import unicodedata

import regex

__all__ = ["WRAP_WIDTH", "line_groups"]

WRAP_WIDTH = 45  # columns; hard wraps are at 60-80, verse and addresses shorter
_LONG = 0.7  # share of the longest line a wrapped line reaches
_SHORT = 0.5  # a wrapped paragraph's line under this share did not reach the margin

_MARKER = regex.compile(
    r"\s*(?:"
    r"[•·◦▪▫‣⁃∙●○■□►▶✓✔*+\-–—](?=\s)"  # bullets (followed by a space)
    r"|\(?\d{1,3}[.)](?=\s)"  # 1.  2)  (3)
    r"|\(?[a-z][.)](?=\s)|\([A-Za-z]\)"  # a.  b)  (c)
    r"|[（(]?[一二三四五六七八九十百\d]{1,4}[、．）)]"  # 一、  （二）  3、
    r")"
)
_OPENING = r"[\s\"'“‘«„(\[]*"
_CAPITAL = regex.compile(_OPENING + r"(?:\p{Lu}|\p{Lt}|\d)")
_CASELESS = regex.compile(_OPENING + r"\p{Lo}")
_SENTENCE_END = regex.compile(r"[.!?…。！？｡][\p{Pe}\p{Pf}\"']*\s*$")
_PUNCTUATION_END = regex.compile(r"\p{P}\s*$")


def _starts_a_line(before: str, line: str) -> bool:
    if _CAPITAL.match(line):
        return True
    # Han has no capitals: only punctuation at the end of the line before tells a
    # line of verse from a wrap in the middle of a phrase.
    return _CASELESS.match(line) is not None and _PUNCTUATION_END.search(before) is not None


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _is_marker(line: str) -> bool:
    return _MARKER.match(line) is not None


def line_groups(paragraph: str) -> list[str]:
    """The paragraph cut at the line breaks that mean something; other breaks stay in
    their group (the caller joins wrapped lines)."""
    lines = [line for line in paragraph.split("\n") if line.strip()]
    if len(lines) < 2:
        return [paragraph]
    widths = [_width(line.strip()) for line in lines]
    top = max(widths)
    inner = widths[:-1]
    wrapped = top >= WRAP_WIDTH and sum(w >= _LONG * top for w in inner) >= 0.8 * len(inner)
    groups = [lines[0]]
    for before, width, line in zip(lines, widths, lines[1:], strict=False):
        if _is_marker(line):
            boundary = True
        elif _SENTENCE_END.search(before):
            boundary = False
        elif wrapped:
            boundary = width < _SHORT * top and _starts_a_line(before, line)
        else:
            boundary = _starts_a_line(before, line)
        if boundary:
            groups.append(line)
        else:
            groups[-1] += "\n" + line
    return groups
