"""Subtitle sidecars: one cue per sentence (or per chunk), timed by where its audio
landed in the book; a sentence's place inside its chunk is found at the voice's pauses
(:mod:`narrator.book.timings`).

SRT and WebVTT differ only in their header, the decimal mark and WebVTT's need to
escape ``&``, ``<`` and ``>``. A cue's text is the chunk's text on one line (a blank
line would end an SRT cue early).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..settings import SUBTITLE_KINDS
from ..util.atomic import atomic_write
from .readtext import ChapterText
from .timings import PauseLog

__all__ = ["SUBTITLE_KINDS", "Cue", "render_subtitles", "sentence_cues", "write_subtitles"]


@dataclass(frozen=True, slots=True)
class Cue:
    """Words shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


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
