"""Sentence boundaries in one paragraph: pysbd, with the repairs it needs.

pysbd is unmaintained since 2021, quadratic within one call and wrong in a few known
ways (closing quotes split off in Chinese and Japanese, splits inside URLs, no split
after "…"); this module hands it windows of a paragraph and repairs what it returns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import regex

with warnings.catch_warnings():
    # pysbd 0.3.4 has invalid escape sequences ('\s'); compiling it without cached
    # bytecode warns, and filterwarnings=error would turn that into a SyntaxError.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import pysbd

__all__ = ["CLOSE", "EXTEND", "GRAPHEME", "WIDE_CLASS", "segmenter_for", "sentence_bounds"]

GRAPHEME = regex.compile(r"\X")
# Scripts written without spaces between words: a line break between two of these is
# a wrap, not a space. Hangul is not among them (Korean puts spaces between words).
WIDE_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\u3001-\u303f\uff01-\uff60"
_WIDE = regex.compile(f"[{WIDE_CLASS}]")
# Characters that belong to the grapheme cluster before them.
EXTEND = r"\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}"
CLOSE = r"\p{Pe}\p{Pf}\"'"
# What pysbd sometimes leaves at the start of the next sentence: closing quotes and
# brackets, a second "！？" mark, a combining mark. It belongs to the sentence before.
_CARRY = regex.compile(rf"[{CLOSE}{EXTEND}.!?。！？｡．…]+ ?")
# Not every pysbd language module splits on CJK full stops (e.g. "hi", "ar"), so split
# there ourselves; not before a closing quote, where pysbd knows better (「...。」と).
_CJK_STOP = regex.compile(rf"[。！？｡][。！？｡!?]*+(?![{CLOSE}{EXTEND}]) ?")
# pysbd splits "paused... Then" but not "paused… Then".
_ELLIPSIS_STOP = regex.compile(r"…+ (?=[\p{Ps}\p{Pi}\"']?\p{Lu})")
# pysbd is quadratic within one call (per list item and abbreviation it rewrites the
# whole text), so a huge paragraph is handed over in windows of about this many chars.
_WINDOW = 2000


@lru_cache(maxsize=64)
def segmenter_for(lang: str) -> Any:
    """The pysbd segmenter for a language code such as "en", "zh-Hans" or "ja_JP"."""
    code = lang.strip().lower().replace("_", "-").partition("-")[0]
    try:
        return pysbd.Segmenter(language=code, clean=False, char_span=False)
    except ValueError:
        # pysbd knows 23 languages; English rules still split ". ", "! ", "? " and 。！？.
        return pysbd.Segmenter(language="en", clean=False, char_span=False)


def sentence_bounds(
    para: str, segmenter: Any, warn: Callable[[str], None] | None = None
) -> list[int]:
    """Offsets of sentence starts in a normalized paragraph, with 0 and len(para).

    ``warn`` hears of a window pysbd failed on (cut at clauses instead)."""
    found: list[int] = []
    base, n = 0, len(para)
    while n - base > _WINDOW:
        end = _window_end(para, base)
        starts = _pysbd_starts(para, base, end, segmenter, warn)
        found += starts
        if starts and starts[-1] - base >= _WINDOW // 4:
            # The window's last sentence may go on past it: segment it again.
            base = starts[-1]
        else:
            found.append(end)
            base = end
    found += _pysbd_starts(para, base, n, segmenter, warn)
    cuts = {cut for start in found if (cut := _repair(para, start)) is not None}
    cuts.update(m.end() for m in _CJK_STOP.finditer(para))
    cuts.update(m.end() for m in _ELLIPSIS_STOP.finditer(para))
    cuts.update(i + 1 for i, ch in enumerate(para) if ch == "\n")  # a line that means a line
    # A boundary always goes after the space between two sentences, never before it.
    cuts = {cut + 1 if cut < n and para[cut] in " \n" else cut for cut in cuts}
    return [0, *sorted(cut for cut in cuts if 0 < cut < n), n]


def _window_end(para: str, base: int) -> int:
    """Where a window from ``base`` ends: after a space, else a CJK stop, else a grapheme."""
    low, high = base + _WINDOW // 2, base + _WINDOW
    space = para.rfind(" ", low, high)
    if space >= 0:
        return space + 1
    stop = max(para.rfind(mark, low, high) for mark in "。！？")
    if stop >= 0:
        return stop + 1
    boundary = high
    for match in GRAPHEME.finditer(para, low, high):
        boundary = match.start()
    return boundary if boundary > low else high


def _pysbd_starts(
    para: str, start: int, end: int, segmenter: Any, warn: Callable[[str], None] | None = None
) -> list[int]:
    """Sentence starts pysbd finds in para[start:end], as offsets into para."""
    window = para[start:end]
    try:
        # Segmenter.segment() would re-find every sentence with a regex compiled for it
        # and scanned from the start of the text (half its run time, quadratic) and drops
        # the sentences it cannot find (pysbd issue #126); find them ourselves.
        sentences = segmenter.processor(window).process()
    except Exception as exc:
        # pysbd is unmaintained regex soup: if it ever fails, this window simply has no
        # sentence boundaries, and is cut at clauses instead; the report says where.
        if warn is not None:
            warn(
                f"the sentence splitter failed on the text from {window[:40]!r} "
                f"({type(exc).__name__}: {exc}); it was cut at commas and spaces instead"
            )
        return []
    starts: list[int] = []
    pos = 0
    for sentence in sentences:
        sentence = sentence.strip()
        found = window.find(sentence, pos) if sentence else -1
        if found < 0:
            continue  # rewritten by pysbd: its text stays with the sentence before
        if found > 0:
            starts.append(start + found)
        pos = found + len(sentence)
    return starts


def _repair(para: str, cut: int) -> int | None:
    """Fix a pysbd boundary that is not after whitespace; None drops it."""
    if para[cut - 1] in " \n":
        return cut
    carry = _CARRY.match(para, cut)
    if carry:
        cut = carry.end()
        if cut >= len(para) or para[cut - 1] in " \n":
            return cut
    before, after = para[cut - 1], para[cut]
    if not (_WIDE.match(before) or _WIDE.match(after) or after.isupper()):
        # "example.com/a.b?c=d": a split inside a word of a spaced script.
        return None
    return cut
