"""The finishing rows (issues 12 and 28): books from the first request to the finished file.

Four runs at the service's real shape (180 requests a minute, 600-character chunks of
about 40 s of audio each, a latency that grows with the text), every answer speech-like
(the emulator's ``speech`` engine: encoders are 2-3x slower on speech than on a tone):
a 1 h 40 min and a 10 h book, each to M4B and to MP3, with a fresh cache. Each gives a
tail row (the emulator's last answer to narrator's exit); the 10-hour M4B run also gives
the end-to-end row and, with its MP3 twin, the disk rows. Whatever narrator does after
its last segment (docs/performance.md names it) shows in the tails, so the rows follow
the product without a change here.

The output folder is sampled every 0.2 s while narrator runs: its peak size, temporary
files included, less the finished book, is the run's extra disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...chunks.split import split_document
from ...inputs.documents import parse_text
from ..emulator import SAMPLE_RATE, EmulatorConfig, start_emulator
from . import texts
from .harness import (
    KEY,
    MB,
    BenchError,
    Narration,
    Progress,
    Row,
    Sizes,
    Workdir,
    at_least,
    fmt_mb,
    narrate,
    under_goal,
)

__all__ = ["finishing"]

# The service's shape (AIML API, qwen3-tts-flash): 180 requests a minute per account,
# 600 billing characters a request; the emulator's tone reads 15 characters a second, so
# a full chunk is 40 s of audio and the rate is 120 s of audio per second of wall time.
RPM = 180
MAX_CHARS = 600
LATENCY = 0.5  # seconds a request takes, plus
LATENCY_PER_CHAR = 0.004  # this per billing character: 2.9 s for 600 characters
CONCURRENCY = 12  # enough in flight that the rate, not the latency, binds
ENGINE = "speech"  # what an encoder meets in real answers
TONE_CHARS_PER_SECOND = 15  # narrator.tools.emulator.audio: 1/15 s a character
SAMPLE_EVERY = 0.2  # seconds between two looks at the output folder
WAV_BYTES_PER_HOUR = SAMPLE_RATE * 2 * 3600  # 16-bit mono, as the service sends it
TAIL_GOAL = 5.0  # seconds from the last segment to the finished file
# Peak extra disk, in finished books: a remux may hold a second copy of the book for a
# moment; a WAV of the whole book is 6x a 64 kb/s M4B (issue 12: none when compressed).
EXTRA_GOAL = 1.5


def _bytes_in(folder: Path) -> int:
    """Bytes in the files under ``folder``; files that vanish while counted count 0."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    total += _bytes_in(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
    return total


class _Watch:
    """The output folder's size every :data:`SAMPLE_EVERY` seconds: its peak, and when
    the finished file first showed."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder, self.output = folder, output
        self.peak = self.samples = 0
        self.seen: float | None = None  # loop time the output first existed

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.peak = max(self.peak, _bytes_in(self.folder))
            self.samples += 1
            if self.seen is None and self.output.exists():
                self.seen = loop.time()
            await asyncio.sleep(SAMPLE_EVERY)


@contextlib.asynccontextmanager
async def _watching(folder: Path, output: Path) -> AsyncIterator[_Watch]:
    watch = _Watch(folder, output)
    task = asyncio.ensure_future(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The folder as the run left it is one of its states too: a book finished between
        # two samples still counts.
        watch.peak = max(watch.peak, _bytes_in(folder))


@dataclass(frozen=True, slots=True)
class _Run:
    """One finishing run, timed on the bench's clock (the emulator's is the same)."""

    narration: Narration
    chunks: int
    first: float  # the first request arrived
    last: float  # the last segment was answered (its audio downloaded)
    audio_seconds: float
    book_bytes: int
    peak_bytes: int  # the output folder at its largest
    samples: int
    seen: float | None  # the finished file first showed
    cache_segment_bytes: int
    cache_bytes: int

    @property
    def ended(self) -> float:
        return self.narration.child.ended

    @property
    def tail(self) -> float:
        return self.ended - self.last

    @property
    def extra(self) -> int:
        return max(0, self.peak_bytes - self.book_bytes)

    def data(self) -> dict[str, Any]:
        child = self.narration.child
        return {
            "chunks": self.chunks,
            "audio_seconds": self.audio_seconds,
            "seconds": self.ended - self.first,
            "to_last_segment": self.last - self.first,
            "tail_seconds": self.tail,
            "file_seen_after_last_segment": None if self.seen is None else self.seen - self.last,
            "process_seconds": child.wall,
            "cpu_seconds": child.cpu_seconds,
            "peak_rss": child.peak_rss,
            "ffmpeg_peak_rss": child.children_peak_rss,
            "stopped_at_time_limit": child.stopped,
            "book_bytes": self.book_bytes,
            "peak_folder_bytes": self.peak_bytes,
            "peak_extra_bytes": self.extra,
            "folder_samples": self.samples,
            "cache_segment_bytes": self.cache_segment_bytes,
            "cache_bytes": self.cache_bytes,
        }


def _book(hours: float) -> tuple[str, int, float]:
    """English prose that the tone voice reads in about ``hours``: the text, its chunks
    at :data:`MAX_CHARS` and their mean billing characters."""
    text = texts.english(int(hours * 3600 * TONE_CHARS_PER_SECOND))
    chunks = split_document(parse_text(text), max_chars=MAX_CHARS)
    return text, len(chunks), sum(c.billing_chars for c in chunks) / len(chunks)


async def _run(
    work: Workdir,
    text: str,
    chunks: int,
    *,
    fmt: str,
    rpm: int,
    concurrency: int,
    voice: str,
    audio: float,
    time_limit: float,
) -> _Run:
    """Narrate ``text`` to ``fmt`` through an emulator of the service's shape at ``rpm``;
    ``audio`` is the seconds the book is expected to last, if a stopped run cannot say."""
    config = EmulatorConfig(
        api_key=KEY, engine=ENGINE, rpm=rpm, latency=LATENCY, latency_per_char=LATENCY_PER_CHAR
    )
    folder, cache = work.path(f"{fmt}-out"), work.path(f"{fmt}-cache")
    folder.mkdir()
    output = folder / f"book.{fmt}"
    try:
        async with await start_emulator(config) as emulator:
            async with _watching(folder, output) as watch:
                run = await narrate(
                    work, emulator, text, f"--rpm={rpm}", f"--concurrency={concurrency}",
                    f"--max-chars={MAX_CHARS}", f"--voice={voice}",
                    cache=cache, output=output, chunks=chunks, time_limit=time_limit,
                )  # fmt: skip
            stats = emulator.stats
            answered = [t for t in (stats.last_success, stats.last_download) if t is not None]
            if not stats.starts or not answered:
                raise BenchError(f"{fmt} run: the emulator answered nothing")
            first, last = stats.starts[0], max(answered)
        segments = cache / "segments"
        doc = run.report["documents"][0] if run.report else {}
        return _Run(
            run,
            chunks,
            first,
            last,
            float(doc.get("audio_seconds", audio)),
            output.stat().st_size if output.exists() else 0,
            watch.peak,
            watch.samples,
            watch.seen,
            _bytes_in(segments) - _bytes_in(segments / "tmp"),  # segments, not leftovers
            _bytes_in(cache),
        )
    finally:  # gigabytes: not needed once measured
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def _limit(ideal: float, audio_seconds: float) -> float:
    """How long a run may take: the ideal with room, plus an encode at 50x real time
    (what today's encode after the last segment needs, with room)."""
    return 1.2 * ideal + 30 + audio_seconds / 50


async def finishing(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """End to end, the tails to M4B and MP3 at two lengths, and disk (see the module)."""
    tails: list[Row] = []
    runs: dict[str, _Run] = {}
    for hours in (sizes.finish_short_hours, sizes.finish_hours):
        text, n, mean_chars = _book(hours)
        audio = n * mean_chars / TONE_CHARS_PER_SECOND
        latency = LATENCY + LATENCY_PER_CHAR * mean_chars
        rate = min(RPM / 60, CONCURRENCY / latency)
        ideal = n / rate
        for fmt, voice in (("m4b", "Cherry"), ("mp3", "Ethan")):
            progress(
                f"finishing: {audio / 3600:.1f} h to {fmt.upper()}, {n} requests, "
                f"ideal {ideal:.0f} s"
            )
            run = await _run(
                work, text, n, fmt=fmt, rpm=RPM, concurrency=CONCURRENCY, voice=voice,
                audio=audio, time_limit=_limit(ideal, audio),
            )  # fmt: skip
            tails.append(_tail(run, fmt))
            runs[fmt] = run
        m4b_ideal = (ideal, rate, latency)
    m4b, mp3 = runs["m4b"], runs["mp3"]  # the long runs
    return [_end_to_end(m4b, *m4b_ideal), *tails, *_disk(m4b, mp3)]


def _stopped(run: _Run) -> str:
    return "; STOPPED at the time limit" if run.narration.child.stopped else ""


def _end_to_end(run: _Run, ideal: float, rate: float, latency: float) -> Row:
    hours = run.audio_seconds / 3600
    elapsed = run.ended - run.first
    return at_least(
        f"end to end: {hours:.1f} h book to M4B, {run.chunks:,} requests of <= {MAX_CHARS} "
        f"characters, --rpm {RPM} --concurrency {CONCURRENCY}, latency {LATENCY:g} s + "
        f"{LATENCY_PER_CHAR * 1000:g} ms/char, speech-like answers",
        f"{elapsed:.0f} s, first request to finished file ({run.last - run.first:.0f} s to "
        f"the last segment)" + _stopped(run),
        f"ideal {ideal:.0f} s = {run.chunks:,} / min(rpm/60, concurrency/latency "
        f"{latency:.2f} s) = {rate:.2f}/s",
        ideal / elapsed,
        0.95,
        {**run.data(), "ideal_seconds": ideal, "ideal_rate": rate, "mean_latency": latency},
    )


def _tail(run: _Run, fmt: str) -> Row:
    audio = run.audio_seconds
    whole, rest = divmod(round(audio / 60), 60)
    length = f"{audio / 3600:.1f} h" if audio >= 3 * 3600 else f"{whole} h {rest} min"
    return under_goal(
        f"tail: last answer to finished {fmt.upper()}, {length}, --rpm {RPM}, speech-like answers",
        f"{run.tail:.1f} s ({run.ended - run.first:.0f} s in all)" + _stopped(run),
        run.tail,
        TAIL_GOAL,
        "s",
        {**run.data(), "format": fmt, "rpm": RPM, "concurrency": CONCURRENCY},
    )


def _disk(m4b: _Run, mp3: _Run) -> list[Row]:
    hours = m4b.audio_seconds / 3600
    per_hour = m4b.cache_segment_bytes / hours if hours else 0.0
    cache = {**m4b.data(), "cache_bytes_per_hour": per_hour}
    extra = m4b.extra / m4b.book_bytes if m4b.book_bytes else float("inf")
    return [
        Row(
            f"disk: cache per hour of audio ({hours:.1f} h run; for speech compressed, see "
            "the FLAC row)",
            f"{per_hour / MB:.0f} MB per hour ({fmt_mb(m4b.cache_segment_bytes)} of segments)",
            f"WAV, {SAMPLE_RATE} Hz 16-bit mono: {WAV_BYTES_PER_HOUR / MB:.1f} MB per hour",
            per_hour / WAV_BYTES_PER_HOUR,
            f"{per_hour / WAV_BYTES_PER_HOUR:.2f}x WAV",
            data=cache,
        ),
        Row(
            f"disk: peak extra in the output folder, {hours:.1f} h to M4B (sampled every "
            f"{SAMPLE_EVERY:g} s, temporary files included)",
            f"{fmt_mb(m4b.extra)} beyond the finished book (to MP3: {fmt_mb(mp3.extra)})",
            f"the finished book: {fmt_mb(m4b.book_bytes)} (MP3: {fmt_mb(mp3.book_bytes)})",
            extra,
            f"{extra:.2f}x the book",
            f"< {EXTRA_GOAL:g}x the book: a copy to remux at most, no WAV of it",
            extra < EXTRA_GOAL,
            {"m4b": m4b.data(), "mp3": mp3.data()},
        ),
    ]
