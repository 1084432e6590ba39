"""Where a book is cut into parts and where its chapters start: the plan both the batch
and the streaming writer follow, decided piece by piece so a stream can follow it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chunks.split import Chunk
from ..inputs.documents import Document
from .tags import ChapterMark

__all__ = ["Audiobook", "PartPlanner", "chapter_marks", "plan_parts"]


@dataclass(frozen=True, slots=True)
class Audiobook:
    """What was written: the audio files (one, or one per part) and the sidecars."""

    files: tuple[Path, ...]
    subtitles: tuple[Path, ...]
    seconds: float
    chapters: tuple[ChapterMark, ...]  # over the whole book, before any split
    starts: tuple[float, ...] = ()  # where each chunk's audio starts in the whole book


def chapter_marks(
    document: Document, chunks: Sequence[Chunk], starts: Sequence[float]
) -> list[ChapterMark]:
    """Where each chapter starts: at its first chunk's audio.

    Empty when no chapter has a title: a book without headings has no chapters to mark.
    """
    titles = {chapter.index: chapter.title for chapter in document.chapters}
    if not any(titles.values()):
        return []
    marks: list[ChapterMark] = []
    previous: int | None = None
    for chunk, start in zip(chunks, starts, strict=True):
        if chunk.chapter != previous:
            title = titles.get(chunk.chapter) or (
                document.title if not marks else f"Chapter {len(marks) + 1}"
            )
            marks.append(ChapterMark(title, 0.0 if not marks else start))
            previous = chunk.chapter
    return marks


class PartPlanner:
    """Greedy parts of at most ``hours``, cut only at the cuts offered in order.

    Each part runs to the last cut that keeps it short enough, so whether to cut at one
    cut is known only once the next is offered (:meth:`offer`). A chunk longer than the
    limit on its own becomes a part of its own rather than being cut mid-word.
    """

    def __init__(self, hours: float | None) -> None:
        self.limit = None if hours is None else hours * 3600
        self.start = 0.0  # where the current part starts
        self._previous: float | None = None

    def offer(self, cut: float) -> float | None:
        """The next place a part may end; returns the cut to make now, if any."""
        made = None
        if (
            self.limit is not None
            and cut - self.start > self.limit
            and self._previous is not None
            and self._previous > self.start
        ):
            made = self.start = self._previous
        self._previous = cut
        return made


def plan_parts(
    seconds: float, cuts: Sequence[float], hours: float | None
) -> list[tuple[float, float]]:
    """Cut a book of ``seconds`` into parts of at most ``hours``, only at ``cuts``.

    Greedy: each part runs to the last cut that keeps it short enough. A chunk longer
    than the limit on its own becomes a part of its own rather than being cut mid-word.
    """
    if hours is None:
        return [(0.0, seconds)]
    planner = PartPlanner(hours)
    bounds = [0.0]
    for cut in [*sorted(cuts), seconds]:
        made = planner.offer(cut)
        if made is not None:
            bounds.append(made)
    if seconds > bounds[-1]:
        bounds.append(seconds)
    return list(itertools.pairwise(bounds))


def part_path(output: Path, number: int, total: int) -> Path:
    """Where part ``number`` of ``total`` goes: ``output`` itself, or ``NAME-01.EXT``..."""
    if total == 1:
        return output
    width = max(2, len(str(total)))
    return output.with_name(f"{output.stem}-{number:0{width}d}{output.suffix}")


def marks_in(marks: Sequence[ChapterMark], start: float, end: float) -> list[ChapterMark]:
    """The chapter marks of the part from ``start`` to ``end``, relative to it."""
    inside = [ChapterMark(m.title, m.start - start) for m in marks if start <= m.start < end]
    before = [m for m in marks if m.start < start]
    if before and (not inside or inside[0].start > 0):
        inside.insert(0, ChapterMark(before[-1].title, 0.0))  # the chapter carries on
    return inside
