"""Text becomes :class:`Chunk` s: pieces a TTS service accepts in one request.

A chunk holds at most ``max_chars`` *billing* characters (a Han character counts 2),
never crosses a chapter and is cut, in order of preference:

1. between paragraphs and between sentences (pysbd, plus a few repairs below);
2. inside an over-long sentence, after clause punctuation (``,`` ``;`` ``:`` ``—`` ``，`` ...);
3. at whitespace;
4. anywhere between two grapheme clusters (a long URL, an unbroken run of Han).

Pieces are packed greedily, keeping running counts, so splitting is linear in the text.
Whitespace inside a paragraph is collapsed to single spaces (line wraps of CJK text are
removed): the chunk texts, joined, equal the input up to whitespace.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import regex

from ..errors import ConfigError
from ..inputs.documents import Document
from ..inputs.lines import line_groups
from .lexicon import Lexicon, Respelled

with warnings.catch_warnings():
    # pysbd 0.3.4 has invalid escape sequences ('\s'); compiling it without cached
    # bytecode warns, and filterwarnings=error would turn that into a SyntaxError.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import pysbd

__all__ = ["Chunk", "billing_chars", "split_document", "split_text"]


# The Han script: every CJK ideograph (all extensions, compatibility ideographs) plus a
# few hundred radicals and marks such as 々 and 〇. Counting those 2 errs on the safe
# side of the service's limit.
_HAN = regex.compile(r"\p{Han}")
_GRAPHEME = regex.compile(r"\X")
# The `re` module's \s is exactly str.isspace(), the whitespace that str.strip() and
# str.split() know; `regex` follows Unicode White_Space, which differs (U+001C..U+001F).
_SPACES = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\u2029")
_LINE_ENDINGS = re.compile(r"\r\n?")

# Scripts written without spaces between words: a line break between two of these is
# a wrap, not a space. Hangul is not among them (Korean puts spaces between words).
_WIDE_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\u3001-\u303f\uff01-\uff60"
_WIDE = regex.compile(f"[{_WIDE_CLASS}]")
_WRAPPED_LINE = regex.compile(rf"(?<=[{_WIDE_CLASS}])[^\S\n]*\n\s*(?=[{_WIDE_CLASS}])")
# Characters that belong to the grapheme cluster before them.
_EXTEND = r"\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}"
_CLOSE = r"\p{Pe}\p{Pf}\"'"
# What pysbd sometimes leaves at the start of the next sentence: closing quotes and
# brackets, a second "！？" mark, a combining mark. It belongs to the sentence before.
_CARRY = regex.compile(rf"[{_CLOSE}{_EXTEND}.!?。！？｡．…]+ ?")
# Not every pysbd language module splits on CJK full stops (e.g. "hi", "ar"), so split
# there ourselves; not before a closing quote, where pysbd knows better (「...。」と).
_CJK_STOP = regex.compile(rf"[。！？｡][。！？｡!?]*+(?![{_CLOSE}{_EXTEND}]) ?")
# pysbd splits "paused... Then" but not "paused… Then".
_ELLIPSIS_STOP = regex.compile(r"…+ (?=[\p{Ps}\p{Pi}\"']?\p{Lu})")
# Clause ends: ASCII ones only before a space, so "1,000", "3:45" and "https:" stay whole.
# A run of dashes ("——" in Chinese) is one clause end.
_CLAUSE_END = regex.compile(
    rf"(?:[;:,][{_CLOSE}]*(?= )|[—；：，、]++[{_CLOSE}]*+)(?![{_EXTEND}]) ?"
)
_WORD_END = regex.compile(rf" (?![{_EXTEND}])")

# pysbd is quadratic within one call (per list item and abbreviation it rewrites the
# whole text), so a huge paragraph is handed over in windows of about this many chars.
_WINDOW = 2000
_PARAGRAPH_SEP = "\n\n"


def billing_chars(text: str) -> int:
    """Characters as the service counts them.

    Every Han character (CJK ideograph: Unified Ideographs incl. extensions A-G...,
    compatibility ideographs; Chinese, Japanese kanji, Korean hanja) counts 2,
    everything else 1 per code point (kana, hangul, punctuation, whitespace, each code
    point of an emoji sequence).
    """
    if text.isascii():
        return len(text)
    han: int = _HAN.subn("", text)[1]
    return len(text) + han


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request's worth of text."""

    index: int  # position in the document, 0-based, contiguous
    chapter: int  # Chapter.index it belongs to
    text: str
    billing_chars: int  # billing_chars(text), or the ``count`` it was split with
    paragraph_start: bool  # begins a new paragraph (or a heading/chapter)
    # The text as written when a lexicon respelled it (subtitles show this), else None.
    written: str | None = None

    @property
    def shown(self) -> str:
        """The text as written: what subtitles show."""
        return self.text if self.written is None else self.written


def split_document(
    doc: Document,
    *,
    max_chars: int = 600,
    lang: str = "en",
    count: Callable[[str], int] = billing_chars,
    lexicon: Lexicon | None = None,
    voice: str = "",
) -> list[Chunk]:
    """Cut a document into chunks of at most ``max_chars`` billing characters.

    A chapter's title is its own chunk; paragraphs are packed greedily (several may
    share a chunk, joined by a blank line); no chunk spans two chapters. ``lang`` is
    the pysbd language code ("en", "zh", "ja", ...; "en-US" works; unknown codes fall
    back to "en"). ``count`` measures a text as the service does (a provider's
    ``billing_chars``; ``len`` for one that counts code points); it must count a string
    no less than the sum of its parts. Raises :class:`ConfigError` when ``max_chars``
    is below 2.

    A ``lexicon`` respells each paragraph (for ``lang`` and ``voice``) before it is
    cut, so the limit counts the spoken form; a chunk it changed keeps its written text
    in ``Chunk.written``.
    """
    _check(max_chars)
    segmenter = _segmenter(lang)
    chunks: list[Chunk] = []
    speak = None if lexicon is None or not lexicon.entries else (lexicon, lang, voice)
    for chapter in doc.chapters:
        packer = _Packer(max_chars, count)
        if chapter.title:
            _add_paragraph(packer, chapter.title, segmenter, speak)
            packer.flush()
        for paragraph in chapter.paragraphs:
            _add_paragraph(packer, paragraph, segmenter, speak)
        packer.flush()
        for text, cost, paragraph_start, written in packer.out:
            chunks.append(
                Chunk(
                    len(chunks),
                    chapter.index,
                    text,
                    cost,
                    paragraph_start,
                    written if written != text else None,
                )
            )
    return chunks


def split_text(
    text: str,
    *,
    max_chars: int = 600,
    lang: str = "en",
    count: Callable[[str], int] = billing_chars,
) -> list[str]:
    """Cut one chapter body (or any text) into chunk texts; blank lines end paragraphs.

    Same rules as :func:`split_document`; headings are not special here.
    """
    _check(max_chars)
    segmenter = _segmenter(lang)
    packer = _Packer(max_chars, count)
    for paragraph in _PARAGRAPH_BREAK.split(_LINE_ENDINGS.sub("\n", text)):
        _add_paragraph(packer, paragraph, segmenter)
    packer.flush()
    return [chunk_text for chunk_text, _, _, _ in packer.out]


def _check(max_chars: int) -> None:
    if max_chars < 2:
        raise ConfigError(
            f"max_chars must be at least 2 (one Han character bills 2), got {max_chars}"
        )


@lru_cache(maxsize=64)
def _segmenter(lang: str) -> Any:
    """The pysbd segmenter for a language code such as "en", "zh-Hans" or "ja_JP"."""
    code = lang.strip().lower().replace("_", "-").partition("-")[0]
    try:
        return pysbd.Segmenter(language=code, clean=False, char_span=False)
    except ValueError:
        # pysbd knows 23 languages; English rules still split ". ", "! ", "? " and 。！？.
        return pysbd.Segmenter(language="en", clean=False, char_span=False)


class _Packer:
    """Greedy packing of consecutive slices of paragraphs, with running counts."""

    __slots__ = (
        "cost",
        "count",
        "done",
        "end",
        "max_chars",
        "out",
        "para",
        "paragraph_start",
        "respelled",
        "start",
        "ws",
    )

    def __init__(self, max_chars: int, count: Callable[[str], int] = billing_chars) -> None:
        self.max_chars = max_chars
        self.count = count
        # (text, billing chars, paragraph_start, written text)
        self.out: list[tuple[str, int, bool, str]] = []
        # whole paragraphs already in the open chunk, as spoken and as written
        self.done: list[tuple[str, str]] = []
        self.para = ""  # the paragraph the open chunk ends in, and its slice in it
        self.respelled: Respelled | None = None  # how para was respelled, if it was
        self.start = self.end = 0
        self.cost = 0  # billing chars of the open chunk, without self.ws
        self.ws = 0  # the open slice's trailing space: counted only if more text follows
        self.paragraph_start = False

    def room(self) -> int:
        """Billing chars a new paragraph may have to join the open chunk."""
        if self.end == self.start:
            return self.max_chars
        return self.max_chars - self.cost - len(_PARAGRAPH_SEP)

    def add(
        self,
        para: str,
        start: int,
        end: int,
        cost: int,
        ws: int,
        new: bool,
        respelled: Respelled | None = None,
    ) -> None:
        """Append para[start:end] (``cost`` without its ``ws`` trailing spaces)."""
        if self.end > self.start:
            sep = len(_PARAGRAPH_SEP) if new else self.ws
            if self.cost + sep + cost <= self.max_chars:
                if new:
                    self.done.append(self._slice())
                    self.para, self.start, self.respelled = para, start, respelled
                self.end, self.cost, self.ws = end, self.cost + sep + cost, ws
                return
            self.flush()
        self.para, self.start, self.end, self.respelled = para, start, end, respelled
        self.cost, self.ws, self.paragraph_start = cost, ws, new

    def flush(self) -> None:
        """Close the open chunk, if any."""
        if self.end > self.start:
            self.done.append(self._slice())
            text = _PARAGRAPH_SEP.join(spoken for spoken, _ in self.done)
            written = _PARAGRAPH_SEP.join(written for _, written in self.done)
            # Counted again: a space that starts a grapheme (" \u0301") may start a piece,
            # and strip() drops it, so self.cost can be one too high.
            self.out.append((text, self.count(text), self.paragraph_start, written))
        self.done = []
        self.para, self.start, self.end, self.respelled = "", 0, 0, None

    def _slice(self) -> tuple[str, str]:
        """The open slice of the paragraph, as spoken and as written."""
        spoken = self.para[self.start : self.end].strip()
        if self.respelled is None:
            return spoken, spoken
        return spoken, self.respelled.written_slice(self.start, self.end).strip()


def _add_paragraph(
    packer: _Packer,
    text: str,
    segmenter: Any,
    speak: tuple[Lexicon, str, str] | None = None,
) -> None:
    para = _normalize(text)
    if not para:
        return
    respelled = None
    if speak is not None:
        lexicon, lang, voice = speak
        respelled = lexicon.respell(para, lang, voice)
        if not respelled.spans:
            respelled = None
        else:
            para = respelled.spoken
    cost = packer.count(para)
    if cost <= packer.room():
        # It fits whole: its sentence boundaries cannot matter, so skip pysbd (most of
        # the time splitting takes).
        packer.add(para, 0, len(para), cost, 0, True, respelled)
        return
    first = True
    for start, end in pairwise(_sentence_bounds(para, segmenter)):
        for piece in _cut(para, start, end, packer.max_chars, 0, packer.count):
            packer.add(para, *piece, first, respelled)
            first = False


def _normalize(text: str) -> str:
    """One paragraph on one line: whitespace runs become one space, CJK wraps vanish;
    a line break that means a line (a list item, verse, an address: see
    :mod:`narrator.inputs.lines`) stays, as one newline, and is a sentence boundary."""
    if "\n" not in text:
        return _SPACES.sub(" ", text).strip()
    lines = (_SPACES.sub(" ", _WRAPPED_LINE.sub("", group)).strip() for group in line_groups(text))
    return "\n".join(line for line in lines if line)


def _sentence_bounds(para: str, segmenter: Any) -> list[int]:
    """Offsets of sentence starts in a normalized paragraph, with 0 and len(para)."""
    found: list[int] = []
    base, n = 0, len(para)
    while n - base > _WINDOW:
        end = _window_end(para, base)
        starts = _pysbd_starts(para, base, end, segmenter)
        found += starts
        if starts and starts[-1] - base >= _WINDOW // 4:
            # The window's last sentence may go on past it: segment it again.
            base = starts[-1]
        else:
            found.append(end)
            base = end
    found += _pysbd_starts(para, base, n, segmenter)
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
    for match in _GRAPHEME.finditer(para, low, high):
        boundary = match.start()
    return boundary if boundary > low else high


def _pysbd_starts(para: str, start: int, end: int, segmenter: Any) -> list[int]:
    """Sentence starts pysbd finds in para[start:end], as offsets into para."""
    window = para[start:end]
    try:
        # Segmenter.segment() would re-find every sentence with a regex compiled for it
        # and scanned from the start of the text (half its run time, quadratic) and drops
        # the sentences it cannot find (pysbd issue #126); find them ourselves.
        sentences = segmenter.processor(window).process()
    except Exception:
        # pysbd is unmaintained regex soup: if it ever fails, this window simply has no
        # sentence boundaries, and is cut at clauses instead.
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


def _cut(
    para: str,
    start: int,
    end: int,
    max_chars: int,
    level: int,
    count: Callable[[str], int] = billing_chars,
) -> list[tuple[int, int, int, int]]:
    """Cut para[start:end] into pieces (start, end, cost, trailing spaces) that fit.

    ``level`` 0 cuts after clause punctuation, 1 at spaces, 2 between graphemes.
    """
    core = end - 1 if para[end - 1] in " \n" else end
    cost = count(para[start:core])
    if cost <= max_chars:
        return [(start, end, cost, end - core)]
    if level >= 2:
        return _hard_cut(para, start, core, end, max_chars, count)
    pattern = _CLAUSE_END if level == 0 else _WORD_END
    cuts = [m.end() for m in pattern.finditer(para, start, core) if start < m.end() < core]
    pieces: list[tuple[int, int, int, int]] = []
    for piece_start, piece_end in pairwise([start, *cuts, end]):
        pieces += _cut(para, piece_start, piece_end, max_chars, level + 1, count)
    return pieces


def _hard_cut(
    para: str,
    start: int,
    core: int,
    end: int,
    max_chars: int,
    count: Callable[[str], int] = billing_chars,
) -> list[tuple[int, int, int, int]]:
    """Pack whole graphemes greedily; only a grapheme over the limit is cut in between."""
    pieces: list[tuple[int, int, int, int]] = []
    piece_start, cost = start, 0
    for match in _GRAPHEME.finditer(para, start, core):
        grapheme = match.group()
        units = [(match.start(), count(grapheme))]
        if units[0][1] > max_chars:
            # A grapheme longer than a chunk (a family emoji is 5 code points) must be
            # cut somewhere: between its code points, each of which bills at most 2.
            units = [(match.start() + i, count(ch)) for i, ch in enumerate(grapheme)]
        for unit_start, unit_cost in units:
            if cost + unit_cost > max_chars and unit_start > piece_start:
                pieces.append((piece_start, unit_start, cost, 0))
                piece_start, cost = unit_start, 0
            cost += unit_cost
    pieces.append((piece_start, end, cost, end - core))
    return pieces
