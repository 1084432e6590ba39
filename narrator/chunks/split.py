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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import regex

from ..errors import ConfigError
from ..inputs.documents import Document
from ..inputs.limits import DEFAULT_MAX_TEXT_BYTES
from ..inputs.lines import line_groups
from .attribution import Line, cast_chapter, voiced_runs
from .bounds import Budget
from .cast import NARRATION, Casting
from .lexicon import Lexicon, Respelled
from .sentences import CLOSE, EXTEND, GRAPHEME, WIDE_CLASS, segmenter_for, sentence_bounds

__all__ = [
    "Chunk",
    "billing_bound",
    "billing_chars",
    "iter_chunks",
    "normalize_paragraph",
    "split_document",
    "split_text",
]


# The Han script: every CJK ideograph (all extensions, compatibility ideographs) plus a
# few hundred radicals and marks such as 々 and 〇. Counting those 2 errs on the safe
# side of the service's limit.
_HAN = regex.compile(r"\p{Han}")
# The `re` module's \s is exactly str.isspace(), the whitespace that str.strip() and
# str.split() know; `regex` follows Unicode White_Space, which differs (U+001C..U+001F).
_SPACES = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\u2029")
_LINE_ENDINGS = re.compile(r"\r\n?")

_WRAPPED_LINE = regex.compile(rf"(?<=[{WIDE_CLASS}])[^\S\n]*\n\s*(?=[{WIDE_CLASS}])")
# Clause ends: ASCII ones only before a space, so "1,000", "3:45" and "https:" stay whole.
# A run of dashes ("——" in Chinese) is one clause end.
_CLAUSE_END = regex.compile(rf"(?:[;:,][{CLOSE}]*(?= )|[—；：，、]++[{CLOSE}]*+)(?![{EXTEND}]) ?")
_WORD_END = regex.compile(rf" (?![{EXTEND}])")

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
    # Its voice ("": the run's) and speaker ("" narrator, "?" unattributed, else a name).
    voice: str = ""
    speaker: str = NARRATION

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
    casting: Casting | None = None,
    warn: Callable[[str], None] | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_BYTES,
) -> list[Chunk]:
    """Cut a document into chunks of at most ``max_chars`` billing characters.

    A chapter's title is its own chunk; paragraphs are packed greedily (several may
    share a chunk, joined by a blank line); no chunk spans two chapters. ``lang`` is
    the pysbd language code ("en", "zh", "ja", ...; "en-US" works; unknown codes fall
    back to "en"). ``count`` measures a text as the service does (a provider's
    ``billing_chars``; ``len`` for one that counts code points); it must count a string
    no less than the sum of its parts. Raises :class:`ConfigError` when ``max_chars``
    is below 2.

    A ``lexicon`` respells each paragraph (for ``lang`` and the voice) before it is cut,
    so the limit counts the spoken form (``Chunk.written`` keeps the written text), within
    a budget (:class:`~narrator.chunks.bounds.Budget`: regex time, at most
    ``max_text_chars`` of spoken text; over it, an :class:`~narrator.errors.InputError`).
    A ``casting`` gives voices out (:mod:`narrator.chunks.cast`): each chapter's narrator
    voice and, when it listens for speech, each quotation its speaker's; a chunk never
    mixes speakers. ``warn`` hears of unclosed quotation marks and of pysbd failures.
    """
    return list(
        iter_chunks(
            doc,
            max_chars=max_chars,
            lang=lang,
            count=count,
            lexicon=lexicon,
            voice=voice,
            casting=casting,
            warn=warn,
            max_text_chars=max_text_chars,
        )
    )


def iter_chunks(
    doc: Document,
    *,
    max_chars: int = 600,
    lang: str = "en",
    count: Callable[[str], int] = billing_chars,
    lexicon: Lexicon | None = None,
    voice: str = "",
    casting: Casting | None = None,
    warn: Callable[[str], None] | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_BYTES,
) -> Iterator[Chunk]:
    """:func:`split_document`'s chunks one at a time, each as soon as it is final
    (packing is greedy: a chunk is closed for good when the next text does not fit or
    its speaker changes), so a run can send the first ones while the rest of a long
    book is still being split."""
    _check(max_chars)
    segmenter = segmenter_for(lang)
    use = lexicon if lexicon is not None and lexicon.entries else None
    budget = _budget(doc, max_text_chars) if use is not None else None
    index = 0  # the next chunk's
    for chapter in doc.chapters:
        narrator = casting.narrator(chapter.title or "") if casting is not None else voice
        speak = None if use is None or budget is None else (use, lang, narrator, budget)
        packer = _Packer(max_chars, count, voice=narrator)
        first = index  # the chapter's first chunk
        if chapter.title:
            _add_paragraph(packer, chapter.title, segmenter, speak, warn)
            packer.flush()
        if casting is not None and casting.listens:
            paragraphs = [p for p in map(_normalize, chapter.paragraphs) if p]
            lines, warnings = cast_chapter(paragraphs, lang, casting)
            for warning in warnings:
                if warn is not None:
                    warn(f"chapter {chapter.index + 1}: {warning}")
            how = (use, lang, casting, chapter.title or "", budget)
            for paragraph, its_lines in zip(paragraphs, lines, strict=True):
                _add_voiced(packer, paragraph, its_lines, segmenter, how, warn)
                closed = _closed(packer, chapter.index, index, first)
                index += len(closed)
                yield from closed
        else:
            for paragraph in chapter.paragraphs:
                _add_paragraph(packer, paragraph, segmenter, speak, warn)
                closed = _closed(packer, chapter.index, index, first)
                index += len(closed)
                yield from closed
        packer.flush()
        closed = _closed(packer, chapter.index, index, first)
        index += len(closed)
        yield from closed


def billing_bound(
    doc: Document,
    *,
    lang: str = "en",
    count: Callable[[str], int] = billing_chars,
    lexicon: Lexicon | None = None,
    voice: str = "",
    casting: Casting | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_BYTES,
) -> int:
    """The most :func:`split_document`'s chunks of ``doc`` bill together, counted without
    splitting: every paragraph and title whole, as it is spoken, plus a paragraph break.

    A chunk is slices of paragraphs joined by paragraph breaks, so for a ``count`` that
    adds up character by character (the services' counts do) no split bills more. With a
    ``lexicon``, a paragraph counts as its longest respelling in any voice it may be read
    in (the chapter's narrator, and with a ``casting`` that listens, every cast voice and
    the dialogue voice), within a :class:`~narrator.chunks.bounds.Budget` as a split's
    (an :class:`~narrator.errors.InputError` over it, as the split would raise).
    """
    use = lexicon if lexicon is not None and lexicon.entries else None
    others: set[str] = set()
    if casting is not None and casting.listens:
        others = {member.voice for member in casting.cast.members}
        others |= {casting.dialogue_voice} - {""}
    budget = None
    if use is not None:  # a respelling for each voice: the budget grows with them
        voices = len(others) + 1
        size = sum(len(p) for c in doc.chapters for p in (c.title or "", *c.paragraphs))
        budget = Budget.for_text(size * voices, max_text_chars * voices)
    sep = count(_PARAGRAPH_SEP)
    total = 0
    for chapter in doc.chapters:
        narrator = casting.narrator(chapter.title or "") if casting is not None else voice
        for text in (chapter.title or "", *chapter.paragraphs):
            para = _normalize(text)
            if not para:
                continue
            if use is None or budget is None:
                total += count(para) + sep
                continue
            total += sep + max(
                count(use.respell(para, lang, its_voice, budget).spoken)
                for its_voice in sorted({narrator, *others})
            )
    return total


def _budget(doc: Document, max_text_chars: int) -> Budget:
    """One respelling budget per document, shared by every paragraph and voice."""
    size = sum(len(p) for c in doc.chapters for p in (c.title or "", *c.paragraphs))
    return Budget.for_text(size, max_text_chars)


def _closed(packer: _Packer, chapter: int, index: int, first: int) -> list[Chunk]:
    """The chunks ``packer`` closed from chunk ``index`` on (its chapter began at chunk
    ``first``); the open one may still grow, so it is not among them."""
    return [
        Chunk(
            index + n,
            chapter,
            text,
            cost,
            starts,
            written if written != text else None,
            its_voice,
            speaker,
        )
        for n, (text, cost, starts, written, speaker, its_voice) in enumerate(
            packer.out[index - first :]
        )
    ]


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
    segmenter = segmenter_for(lang)
    packer = _Packer(max_chars, count)
    for paragraph in _PARAGRAPH_BREAK.split(_LINE_ENDINGS.sub("\n", text)):
        _add_paragraph(packer, paragraph, segmenter)
    packer.flush()
    return [out[0] for out in packer.out]


def _check(max_chars: int) -> None:
    if max_chars < 2:
        raise ConfigError(
            f"max_chars must be at least 2 (one Han character bills 2), got {max_chars}"
        )


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
        "speaker",
        "start",
        "voice",
        "ws",
    )

    def __init__(
        self, max_chars: int, count: Callable[[str], int] = billing_chars, voice: str = ""
    ) -> None:
        self.max_chars = max_chars
        self.count = count
        # (text, billing chars, paragraph_start, written text, speaker, voice)
        self.out: list[tuple[str, int, bool, str, str, str]] = []
        # Who speaks the open chunk, in which voice: a chunk never mixes two.
        self.speaker, self.voice = NARRATION, voice
        # whole paragraphs already in the open chunk, as spoken and as written
        self.done: list[tuple[str, str]] = []
        self.para = ""  # the paragraph the open chunk ends in, and its slice in it
        self.respelled: Respelled | None = None  # how para was respelled, if it was
        self.start = self.end = 0
        self.cost = 0  # billing chars of the open chunk, without self.ws
        self.ws = 0  # the open slice's trailing space: counted only if more text follows
        self.paragraph_start = False

    def speak(self, speaker: str, voice: str) -> None:
        """What follows is said by ``speaker`` in ``voice``: a change closes the chunk."""
        if (speaker, voice) != (self.speaker, self.voice):
            self.flush()
            self.speaker, self.voice = speaker, voice

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
            self.out.append(
                (text, self.count(text), self.paragraph_start, written, self.speaker, self.voice)
            )
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
    speak: tuple[Lexicon, str, str, Budget] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    para = _normalize(text)
    if not para:
        return
    respelled = None
    if speak is not None:
        lexicon, lang, voice, budget = speak
        respelled = lexicon.respell(para, lang, voice, budget)
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
    for start, end in pairwise(sentence_bounds(para, segmenter, warn)):
        for piece in _cut(para, start, end, packer.max_chars, 0, packer.count):
            packer.add(para, *piece, first, respelled)
            first = False


def _add_voiced(
    packer: _Packer,
    para: str,
    lines: list[Line],
    segmenter: Any,
    how: tuple[Lexicon | None, str, Casting, str, Budget | None],
    warn: Callable[[str], None] | None = None,
) -> None:
    """A paragraph (normalized) whose lines may have voices of their own: each line is
    respelled for its voice and packed with its speaker; a speaker line's name is shown
    in subtitles, not read."""
    respelled_para: Respelled | None
    respelled_para, runs = voiced_runs(para, lines, *how)
    spoken = respelled_para.spoken
    if not respelled_para.spans:
        respelled_para = None
    bounds: list[int] | None = None
    first = True
    for start, end, speaker, voice in runs:
        if not spoken[start:end].strip():
            continue
        packer.speak(speaker, voice)
        cost = packer.count(spoken[start:end].strip())
        if cost <= packer.room():
            packer.add(spoken, start, end, cost, 0, first, respelled_para)
            first = False
            continue
        if bounds is None:
            bounds = sentence_bounds(spoken, segmenter, warn)
        cuts = [start, *(b for b in bounds if start < b < end), end]
        for piece_start, piece_end in pairwise(cuts):
            for piece in _cut(spoken, piece_start, piece_end, packer.max_chars, 0, packer.count):
                packer.add(spoken, *piece, first, respelled_para)
                first = False


def _normalize(text: str) -> str:
    """One paragraph on one line: whitespace runs become one space, CJK wraps vanish;
    a line break that means a line (a list item, verse, an address: see
    :mod:`narrator.inputs.lines`) stays, as one newline, and is a sentence boundary."""
    if "\n" not in text:
        return _SPACES.sub(" ", text).strip()
    lines = (_SPACES.sub(" ", _WRAPPED_LINE.sub("", group)).strip() for group in line_groups(text))
    return "\n".join(line for line in lines if line)


normalize_paragraph = _normalize  # a paragraph as the splitter reads it


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
    for match in GRAPHEME.finditer(para, start, core):
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
