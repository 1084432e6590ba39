"""From a document's segments to the files a listener gets: stitch, normalise, encode, sidecars.

One document's finishing line, run once its last chunk is synthesized:

1. stitch the segments, with their gaps, into a temporary WAV beside the output
   (with clean joins unless the output is WAV, see :class:`AudiobookOptions`);
2. with ``normalize``, make a loudness-normalised copy of the whole book (two passes);
3. cut it into parts of at most ``split_hours`` (at gaps between chunks), and encode
   each part once, with tags and chapter marks;
4. write subtitles beside each part.

The temporary WAVs are removed whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chunks.split import Chunk
from ..inputs.documents import Document
from ..settings import AudiobookOptions
from .encode import ChapterMark, Metadata, encode, format_of, normalize_wav
from .stitch import Piece, StitchResult, stitch_wav
from .subtitles import Cue, write_subtitles

__all__ = ["Audiobook", "AudiobookOptions", "chapter_marks", "make_audiobook", "plan_parts"]


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


def plan_parts(
    seconds: float, cuts: Sequence[float], hours: float | None
) -> list[tuple[float, float]]:
    """Cut a book of ``seconds`` into parts of at most ``hours``, only at ``cuts``.

    Greedy: each part runs to the last cut that keeps it short enough. A chunk longer
    than the limit on its own becomes a part of its own rather than being cut mid-word.
    """
    if hours is None:
        return [(0.0, seconds)]
    limit = hours * 3600
    bounds = [0.0]
    previous: float | None = None
    for cut in [*sorted(cuts), seconds]:
        if cut - bounds[-1] > limit and previous is not None and previous > bounds[-1]:
            bounds.append(previous)
        previous = cut
    if seconds > bounds[-1]:
        bounds.append(seconds)
    return list(itertools.pairwise(bounds))


def _part_path(output: Path, number: int, total: int) -> Path:
    if total == 1:
        return output
    width = max(2, len(str(total)))
    return output.with_name(f"{output.stem}-{number:0{width}d}{output.suffix}")


def _marks_in(marks: Sequence[ChapterMark], start: float, end: float) -> list[ChapterMark]:
    """The chapter marks of the part from ``start`` to ``end``, relative to it."""
    inside = [ChapterMark(m.title, m.start - start) for m in marks if start <= m.start < end]
    before = [m for m in marks if m.start < start]
    if before and (not inside or inside[0].start > 0):
        inside.insert(0, ChapterMark(before[-1].title, 0.0))  # the chapter carries on
    return inside


@contextlib.contextmanager
def _scratch(output: Path, what: str) -> Iterator[Path]:
    path = output.with_name(f".{output.name}.{secrets.token_hex(4)}.{what}.wav")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def make_audiobook(
    document: Document,
    chunks: Sequence[Chunk],
    pieces: Sequence[Piece],
    output: Path,
    options: AudiobookOptions | None = None,
) -> Audiobook:
    """Stitch ``pieces`` (one per chunk, in order) and encode them into ``output``.

    With ``split_hours``, parts are named ``NAME-01.EXT``, ``NAME-02.EXT``, ... Raises
    :class:`~narrator.errors.AudioError` for unreadable segments or an ffmpeg failure.
    """
    options = options or AudiobookOptions()
    fmt = format_of(output, options.format)
    clean = options.clean_joins if options.clean_joins is not None else fmt != "wav"
    output.parent.mkdir(parents=True, exist_ok=True)
    with _scratch(output, "stitched") as stitched_path, _scratch(output, "loudnorm") as normal:
        stitched = stitch_wav(pieces, stitched_path, clean=clean)
        source = stitched_path
        if options.normalize:
            normalize_wav(
                stitched_path,
                normal,
                rate=stitched.rate,
                width=stitched.width,
                target=options.target_lufs,
                true_peak=options.true_peak,
            )
            stitched_path.unlink()  # no need for two copies of the book on disk
            source = normal
        return _encode_parts(document, chunks, stitched, source, output, fmt, options)


def _encode_parts(
    document: Document,
    chunks: Sequence[Chunk],
    stitched: StitchResult,
    source: Path,
    output: Path,
    fmt: str,
    options: AudiobookOptions,
) -> Audiobook:
    marks = chapter_marks(document, chunks, stitched.starts)
    ends = [s + d for s, d in zip(stitched.starts, stitched.durations, strict=True)]
    # Cut in the middle of the gap between two chunks.
    cuts = [(end + start) / 2 for end, start in zip(ends, stitched.starts[1:], strict=False)]
    parts = plan_parts(stitched.seconds, cuts, options.split_hours)
    cues = [
        Cue(s, e, chunk.text) for chunk, s, e in zip(chunks, stitched.starts, ends, strict=True)
    ]
    title = options.title or document.title
    files: list[Path] = []
    sidecars: list[Path] = []
    for number, (start, end) in enumerate(parts, start=1):
        path = _part_path(output, number, len(parts))
        many = len(parts) > 1
        meta = Metadata(
            title=f"{title} (part {number} of {len(parts)})" if many else title,
            author=options.author,
            album=options.album or (title if many else None),
            year=options.year,
            cover=options.cover,
            track=(number, len(parts)) if many else None,
        )
        encode(
            source,
            path,
            fmt=fmt,
            metadata=meta,
            chapters=_marks_in(marks, start, end),
            start=start,
            end=end,
        )
        files.append(path)
        if options.subtitles:
            part_cues = [
                Cue(c.start - start, min(c.end, end) - start, c.text)
                for c in cues
                if start <= c.start < end
            ]
            sidecar = path.with_suffix(f".{options.subtitles}")
            sidecars.append(write_subtitles(part_cues, sidecar, options.subtitles))
    return Audiobook(tuple(files), tuple(sidecars), stitched.seconds, tuple(marks), stitched.starts)
