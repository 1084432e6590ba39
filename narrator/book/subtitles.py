"""Subtitle sidecars: one cue per sentence (or per chunk), timed by where its audio
landed in the book; a sentence's place inside its chunk is found at the voice's pauses
(:mod:`narrator.book.timings`). A cue too long to read at a glance is shown in pieces
(:func:`bounded`), each timed by its share of the text.

SRT and WebVTT differ only in their header, the decimal mark and WebVTT's need to
escape ``&``, ``<`` and ``>``. A cue's text is the chunk's text on one line (a blank
line would end an SRT cue early).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..settings import SUBTITLE_KINDS
from ..util.atomic import atomic_write
from .readtext import ChapterText
from .timings import PauseLog

__all__ = [
    "MAX_CUE_CHARS",
    "MAX_CUE_SECONDS",
    "SUBTITLE_KINDS",
    "Cue",
    "bounded",
    "read_subtitles",
    "render_subtitles",
    "sentence_cues",
    "write_subtitles",
]

# A cue is read at a glance: at most two lines of about 42 characters, and a few seconds
# (subtitle guides ask for ~7 s at most). A longer chunk is shown in pieces.
MAX_CUE_CHARS = 84
MAX_CUE_SECONDS = 7.0


@dataclass(frozen=True, slots=True)
class Cue:
    """Words shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def bounded(cue: Cue) -> list[Cue]:
    """``cue`` in pieces of at most :data:`MAX_CUE_CHARS` characters and about
    :data:`MAX_CUE_SECONDS` seconds, cut between words (after a sentence or a clause
    where one is near), each timed by its share of the characters."""
    words = cue.text.split()
    text = " ".join(words)
    span = max(0.0, cue.end - cue.start)
    pieces_by_time = math.ceil(span / MAX_CUE_SECONDS) if span > 0 else 1
    pieces = max(pieces_by_time, math.ceil(len(text) / MAX_CUE_CHARS), 1)
    if pieces == 1 or len(words) < 2:
        return [Cue(cue.start, cue.end, text)]
    width = min(MAX_CUE_CHARS, max(1, math.ceil(len(text) / pieces)))
    lines: list[str] = []
    current: list[str] = []
    for word in words:
        if current and len(" ".join([*current, word])) > width:
            lines.append(" ".join(current))
            current = []
        current.append(word)
        # After a sentence or a clause, once the piece is half full: cut there.
        if word[-1] in ".!?;:" and len(" ".join(current)) >= width // 2:
            lines.append(" ".join(current))
            current = []
    if current:
        lines.append(" ".join(current))
    total = sum(len(line) for line in lines)
    cues: list[Cue] = []
    at = cue.start
    for n, line in enumerate(lines):
        end = cue.end if n == len(lines) - 1 else at + span * len(line) / total
        cues.append(Cue(at, end, line))
        at = end
    return cues


_TIMING = re.compile(r"(\d+):(\d\d):(\d\d)[,.](\d{3})\s+-->\s+(\d+):(\d\d):(\d\d)[,.](\d{3})")


def read_subtitles(text: str) -> list[Cue]:
    """The cues of an SRT or WebVTT file narrator wrote (to write the other kind)."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.strip().splitlines()
        for n, line in enumerate(lines):
            found = _TIMING.search(line)
            if found is None:
                continue
            h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in found.groups())
            words = " ".join(lines[n + 1 :])
            words = words.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
            cues.append(Cue(start, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000, words))
            break
    if not cues and text.strip() not in ("", "WEBVTT"):
        raise ValueError("no cues")
    return cues


def _stamp(seconds: float, mark: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{mark}{ms:03d}"


def render_subtitles(cues: Sequence[Cue], kind: str) -> str:
    """The subtitle file's text, ``kind`` being ``srt`` or ``vtt``."""
    if kind not in SUBTITLE_KINDS:
        raise ConfigError(f"--subtitles {kind}: choose srt or vtt")
    mark = "," if kind == "srt" else "."
    blocks = ["WEBVTT\n"] if kind == "vtt" else []
    for number, cue in enumerate(cues, start=1):
        text = " ".join(cue.text.split())
        if kind == "vtt":
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        timing = f"{_stamp(cue.start, mark)} --> {_stamp(cue.end, mark)}"
        blocks.append(f"{number}\n{timing}\n{text}\n")
    return "\n".join(blocks)


def write_subtitles(cues: Sequence[Cue], path: Path, kind: str) -> Path:
    """Write ``cues`` to ``path`` as SRT or WebVTT (UTF-8), atomically."""
    return atomic_write(path, render_subtitles(cues, kind))


def sentence_cues(chapters: Sequence[ChapterText], pauses: PauseLog) -> list[Cue]:
    """One cue per sentence: from its start to the next one's in the same chunk, the
    chunk's last to the chunk's end (the gap after it shows nothing)."""
    sentences = [s for chapter in chapters for s in chapter.sentences]
    starts = pauses.starts([(s.chunk, s.weight) for s in sentences])
    cues: list[Cue] = []
    for n, (sentence, start) in enumerate(zip(sentences, starts, strict=True)):
        following = n + 1 < len(sentences) and sentences[n + 1].chunk == sentence.chunk
        end = starts[n + 1] if following else pauses.span(sentence.chunk)[1]
        cues.append(Cue(start, max(start, end), sentence.text.strip()))
    return cues
