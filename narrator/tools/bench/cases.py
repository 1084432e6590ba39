"""The benchmarks of issue 6, each returning its rows of the table.

Everything that the figures are about runs as a separate process (``python -m
narrator.tools.bench.child``), so its CPU time and peak memory are its own; the emulator
runs in the benchmark process, on loopback, and its cost is not counted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ...book.stitch import Piece, stitch_wav
from ...chunks.split import split_document
from ...errors import NarratorError
from ...inputs.documents import parse_text
from ...util.wav import read_wav_info, tone_pcm, wav_bytes
from ..emulator import MODEL, EmulatorConfig, RunningEmulator, start_emulator
from . import texts

with warnings.catch_warnings():
    # Same as in narrator.chunks.split: pysbd 0.3.4 has invalid escape sequences.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import pysbd

KEY = "bench-key"
MB = 1_000_000


class BenchError(NarratorError):
    """A benchmark could not run (a child process failed, an input came out wrong)."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each benchmark is; :data:`FULL` is the issue's, the others smoke tests."""

    chunks: int = 600  # throughput and adaptive-rate runs
    latency: float = 0.3  # seconds per request in those runs
    sequential: int = 20  # chunks the sequential client is timed on (then extrapolated)
    stitch_segments: int = 3600  # 10 s each
    pydub_segments: int = 360  # the pydub comparison is quadratic: a subset
    encode_segments: int = 120  # encoding is linear: timed on a subset, extrapolated
    english_bytes: int = 1_000_000
    chinese_bytes: int = 300_000
    resume_chunks: int = 3000
    cost_chunks: int = 10_000
    offline_chunks: int = 100  # the offline voice: a short book, no service, no rate
    quality_chunks: int = 500  # the quality gate's runs (its CPU run has twice as many)


FULL = Sizes()
QUICK = Sizes(
    chunks=100,
    sequential=5,
    stitch_segments=360,
    pydub_segments=36,
    encode_segments=36,
    english_bytes=100_000,
    chinese_bytes=30_000,
    resume_chunks=300,
    cost_chunks=1000,
    quality_chunks=100,
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; ``data`` holds the raw numbers for the JSON."""

    what: str
    figure: str
    reference: str
    ratio: float | None = None
    ratio_text: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal
    data: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str], None]


# --- child processes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A finished child process and what it cost."""

    started: float  # loop time at spawn
    ended: float  # loop time when its exit was seen
    seconds: float  # measured inside it, from main() to the end
    cpu_seconds: float  # user + system, its own (threads included), not its children's
    peak_rss: int  # bytes
    children_peak_rss: int  # bytes, the largest process it started (say ffmpeg); 0 if none
    stderr: str
    stopped: bool  # it hit its time limit and was stopped: partial figures

    @property
    def wall(self) -> float:
        return self.ended - self.started


class Workdir:
    """Fresh, numbered paths inside the benchmark's scratch folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._n = 0

    def path(self, name: str) -> Path:
        self._n += 1
        return self.root / f"{self._n:03d}-{name}"


async def run_child(
    work: Workdir, mode: str, *args: str, time_limit: float | None = None
) -> ChildRun:
    """Run ``python -m narrator.tools.bench.child`` and read its usage file.

    Past ``time_limit`` seconds the child gets SIGTERM (narrator stops cleanly and
    exits 143): :attr:`ChildRun.stopped` then says its figures are partial.
    """
    usage = work.path("usage.json")
    env = {k: v for k, v in os.environ.items() if k not in ("AIMLAPI_KEY", "NARRATOR_BASE_URL")}
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "narrator.tools.bench.child",
        str(usage),
        mode,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    talk = asyncio.ensure_future(proc.communicate())
    done, _ = await asyncio.wait([talk], timeout=time_limit)
    stopped = not done
    if stopped:
        proc.terminate()
    _, err = await talk
    ended = loop.time()
    stderr = err.decode(errors="replace")
    if (proc.returncode != 0 and not stopped) or not usage.exists():
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"{mode} {' '.join(args[:2])}: exit {proc.returncode}: {last[0]}")
    data = json.loads(usage.read_text(encoding="utf-8"))
    return ChildRun(
        started,
        ended,
        data["seconds"],
        data["cpu_seconds"],
        data["peak_rss"],
        data["children_peak_rss"],
        stderr,
        stopped,
    )


@dataclass(frozen=True, slots=True)
class Narration:
    """A ``narrator narrate`` run in a child process, and its ``--report``."""

    child: ChildRun
    report: dict[str, Any]


async def narrate(
    work: Workdir,
    emulator: RunningEmulator,
    text: str,
    *flags: str,
    cache: Path,
    output: Path | None = None,
    chunks: int,
    time_limit: float | None = None,
) -> Narration:
    """Narrate ``text`` through ``emulator``; fails unless it made ``chunks`` chunks.

    A run stopped at ``time_limit`` is returned as it is, with its partial report.
    """
    source = work.path("book.txt")
    source.write_text(text, encoding="utf-8")
    report_path = work.path("report.json")
    output = output or work.path("book.wav")
    child = await run_child(
        work,
        "cli",
        "narrate",
        str(source),
        "-o",
        str(output),
        "--base-url",
        emulator.url,
        "--api-key",
        KEY,
        "--cache-dir",
        str(cache),
        "--report",
        str(report_path),
        "--quiet",
        "--yes",  # the emulator is free, whatever the estimate says
        *flags,
        time_limit=time_limit,
    )
    if child.stopped:
        return Narration(child, {})
    report = json.loads(report_path.read_text(encoding="utf-8"))
    (doc,) = report["documents"]
    if doc["status"] not in ("done", "up-to-date") or doc["chunks"] != chunks:
        raise BenchError(f"narration went wrong: {doc['status']}, {doc['chunks']} chunks")
    return Narration(child, report)


def _chunked(count: int, width: int) -> tuple[str, list[str]]:
    """A text of ``count`` one-chunk lines under ``--max-chars width + 1``, and the lines."""
    text = texts.numbered_lines(count, width=width)
    pieces = split_document(parse_text(text), max_chars=width + 1)
    if len(pieces) != count:  # the arithmetic of numbered_lines no longer holds
        raise BenchError(f"expected {count} chunks, the splitter made {len(pieces)}")
    return text, [p.text for p in pieces]


def _fmt_mb(size: float) -> str:
    return f"{size / MB:,.0f} MB" if size >= 10 * MB else f"{size / MB:.1f} MB"


# --- 1 and 2: throughput and the adaptive rate --------------------------------------------


def _limit(ideal_seconds: float) -> float:
    """How long a rate-bound run may take: below 0.8 of the ideal rate the goal is lost
    anyway, and the rest of the table should not wait for it."""
    return 1.2 * ideal_seconds + 10


def _successes(statuses: dict[int, int]) -> int:
    return statuses.get(200, 0) + statuses.get(201, 0)


def _partial(run: Narration, done: int, n: int) -> str:
    return f"; STOPPED at the time limit, {done} of {n} done" if run.child.stopped else ""


async def sequential_client(url: str, lines: Sequence[str], folder: Path) -> float:
    """What the seed's example does, in a loop: POST, then download, one chunk at a time.

    Like ``requests.post`` it opens a connection per call. Returns seconds taken.
    """
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    for i, line in enumerate(lines):
        async with aiohttp.ClientSession() as session:
            payload = {"model": MODEL, "text": line, "voice": "Cherry"}
            headers = {"Authorization": f"Bearer {KEY}"}
            async with session.post(f"{url}/v1/tts", json=payload, headers=headers) as response:
                response.raise_for_status()
                body = await response.json()
            async with session.get(body["audio"]["url"]) as response:
                response.raise_for_status()
                (folder / f"{i}.wav").write_bytes(await response.read())
    return time.perf_counter() - began


async def throughput(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """600 chunks at 1,200/min allowed, 0.3 s latency, ``--concurrency 8 --rpm 1200``."""
    n, latency, rpm, concurrency = sizes.chunks, sizes.latency, 1200, 8
    text, lines = _chunked(n, 100)
    ideal = min(rpm / 60, concurrency / latency)
    config = EmulatorConfig(api_key=KEY, engine="tone", rpm=rpm, latency=latency)
    progress(f"throughput: {n} chunks, ideal {ideal:.1f}/s")
    async with await start_emulator(config) as emulator:
        run = await narrate(
            work,
            emulator,
            text,
            "--max-chars=101",
            f"--concurrency={concurrency}",
            f"--rpm={rpm}",
            cache=work.path("cache"),
            chunks=n,
            time_limit=_limit(n / ideal),
        )
        stats = emulator.stats
        first, done = stats.starts[0], _successes(stats.statuses)
        requests, throttled = stats.requests, stats.statuses.get(429, 0)
        max_in_flight = stats.max_in_flight
        k = min(sizes.sequential, n)
        progress(f"throughput: sequential client on {k} chunks")
        sequential = await sequential_client(emulator.url, lines[:k], work.path("sequential"))
    # From the first request to the audiobook on disk: the tail (last latency, download,
    # stitching, exit) counts against narrator.
    elapsed = run.child.ended - first
    rate = done / elapsed
    seq_rate = k / sequential
    cpu_per_1000 = run.child.cpu_seconds / n * 1000
    common = {"chunks": n, "requests": requests, "throttled": throttled}
    return [
        Row(
            f"throughput: {n} chunks, 1,200/min allowed, {latency:g} s latency, "
            f"--concurrency {concurrency} --rpm {rpm}",
            f"{rate:.2f} chunks/s ({elapsed:.1f} s, first request to audiobook)"
            + _partial(run, done, n),
            f"ideal {ideal:.2f}/s = min(rpm/60, concurrency/latency)",
            rate / ideal,
            f"{rate / ideal:.3f}",
            ">= 0.95",
            rate / ideal >= 0.95,
            {
                **common,
                "rate": rate,
                "ideal": ideal,
                "seconds": elapsed,
                "process_seconds": run.child.wall,
                "max_in_flight": max_in_flight,
            },
        ),
        Row(
            "throughput vs a sequential client (the seed's example in a loop)",
            f"{rate:.2f} chunks/s",
            f"{seq_rate:.2f} chunks/s: {k} chunks timed, {n / seq_rate:.0f} s for {n} extrapolated",
            rate / seq_rate,
            f"{rate / seq_rate:.1f}x faster",
            data={"rate": rate, "sequential_rate": seq_rate, "sequential_chunks": k},
        ),
        Row(
            f"client CPU, 100-character chunks ({n}-chunk throughput run)",
            f"{cpu_per_1000:.2f} s per 1,000 chunks",
            "goal 2 s",
            cpu_per_1000 / 2,
            f"{cpu_per_1000 / 2:.2f}",
            "< 2 s",
            cpu_per_1000 < 2,
            {
                "cpu_seconds": run.child.cpu_seconds,
                "chunks": n,
                "peak_rss": run.child.peak_rss,
            },
        ),
    ]


async def adaptive(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """The throughput run, but the service allows 300/min while narrator is told 1,200."""
    n, latency, allowed, told = sizes.chunks, sizes.latency, 300, 1200
    text, _ = _chunked(n, 100)
    config = EmulatorConfig(api_key=KEY, engine="tone", rpm=allowed, latency=latency)
    progress(f"adaptive rate: {n} chunks at {allowed}/min (about {n / allowed * 60:.0f} s)")
    async with await start_emulator(config) as emulator:
        run = await narrate(
            work,
            emulator,
            text,
            "--max-chars=101",
            "--concurrency=8",
            f"--rpm={told}",
            cache=work.path("cache"),
            chunks=n,
            time_limit=_limit(n / allowed * 60),
        )
        stats = emulator.stats
        first, requests, done = stats.starts[0], stats.requests, _successes(stats.statuses)
        throttled = stats.statuses.get(429, 0)
    elapsed = run.child.ended - first
    achieved = done / elapsed * 60
    share = throttled / requests
    data = {
        "chunks": n,
        "done": done,
        "stopped_at_time_limit": run.child.stopped,
        "requests": requests,
        "throttled": throttled,
        "seconds": elapsed,
        "achieved_rpm": achieved,
        "allowed_rpm": allowed,
    }
    return [
        Row(
            f"adaptive rate: service allows {allowed}/min, narrator told --rpm {told}",
            f"{achieved:.0f} chunks/min ({done} in {elapsed:.1f} s)" + _partial(run, done, n),
            f"{allowed}/min allowed",
            achieved / allowed,
            f"{achieved / allowed:.3f}",
            ">= 0.9",
            achieved / allowed >= 0.9,
            data,
        ),
        Row(
            "adaptive rate: requests answered 429",
            f"{share:.1%} ({throttled} of {requests})",
            "goal under 5%",
            share / 0.05,
            f"{share / 0.05:.2f}",
            "< 5%",
            share < 0.05,
            data,
        ),
    ]


# --- 3: stitching -------------------------------------------------------------------------


async def stitching(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """3,600 ten-second segments to one WAV; pydub ``+=`` on a subset for the ratio."""
    folder = work.path("segments")
    folder.mkdir()
    segments = []
    for i in range(4):  # a few distinct files, each used many times
        path = folder / f"tone-{i}.wav"
        path.write_bytes(wav_bytes(tone_pcm(10.0, 24000, freq=200 + 30 * i), 24000))
        segments.append(str(path))

    async def join(mode: str, count: int) -> ChildRun:
        spec = work.path("spec.json")
        output = work.path(f"{mode}.wav")
        spec.write_text(
            json.dumps(
                {"segments": segments, "count": count, "gap_ms": 300, "output": str(output)}
            ),
            encoding="utf-8",
        )
        try:
            return await run_child(work, mode, str(spec))
        finally:
            output.unlink(missing_ok=True)  # gigabytes; not needed once measured

    whole, subset = sizes.stitch_segments, sizes.pydub_segments
    progress(f"stitching: {whole} x 10 s to WAV")
    book = await join("stitch", whole)
    small = await join("stitch", subset)
    progress(f"stitching: pydub += on {subset} x 10 s")
    pydub = await join("pydub", subset)
    hours, sub_hours = whole * 10 / 3600, subset * 10 / 3600
    rows = [
        Row(
            f"stitch {sub_hours:g} h ({subset} x 10 s segments, 0.3 s gaps) to WAV",
            f"{small.seconds:.2f} s, peak {_fmt_mb(small.peak_rss)}",
            f"pydub += on the same: {pydub.seconds:.1f} s, peak {_fmt_mb(pydub.peak_rss)}",
            pydub.seconds / small.seconds,
            f"{pydub.seconds / small.seconds:.0f}x faster",
            data={
                "segments": subset,
                "seconds": small.seconds,
                "peak_rss": small.peak_rss,
                "pydub_seconds": pydub.seconds,
                "pydub_peak_rss": pydub.peak_rss,
            },
        ),
        Row(
            f"stitch {hours:g} h ({whole:,} x 10 s segments) to WAV: time",
            f"{book.seconds:.2f} s",
            "goal 10 s",
            book.seconds / 10,
            f"{book.seconds / 10:.2f}",
            "< 10 s",
            book.seconds < 10,
            {"segments": whole, "seconds": book.seconds, "cpu_seconds": book.cpu_seconds},
        ),
        Row(
            f"stitch {hours:g} h to WAV: peak memory",
            _fmt_mb(book.peak_rss),
            "goal 150 MB",
            book.peak_rss / (150 * MB),
            f"{book.peak_rss / (150 * MB):.2f}",
            "< 150 MB",
            book.peak_rss < 150 * MB,
            {"segments": whole, "peak_rss": book.peak_rss},
        ),
    ]
    return [*rows, await _encoding(sizes, work, progress, segments, hours)]


async def _encoding(
    sizes: Sizes, work: Workdir, progress: Progress, segments: list[str], hours: float
) -> Row:
    """M4B through narrator.book.encode, on a subset: AAC runs at a fixed multiple of real time."""
    what = f"encode {hours:g} h to M4B"
    encode = importlib.util.find_spec("narrator.book.encode")
    if encode is None:
        return Row(what, "not yet (issue 5)", "")
    count = sizes.encode_segments
    source, output = work.path("encode.wav"), work.path("encode.m4b")
    stitch_wav([Piece(Path(segments[i % len(segments)]), 300) for i in range(count)], source)
    audio = read_wav_info(source).seconds
    spec = work.path("spec.json")
    spec.write_text(json.dumps({"source": str(source), "output": str(output)}), encoding="utf-8")
    progress(f"encoding: {audio / 60:.0f} min of WAV to M4B")
    try:
        run = await run_child(work, "encode", str(spec))
    finally:
        source.unlink(missing_ok=True)
        output.unlink(missing_ok=True)
    speed = audio / run.seconds
    book = hours * 3600 / speed
    return Row(
        what,
        f"{book:.0f} s, peak {_fmt_mb(max(run.peak_rss, run.children_peak_rss))} "
        f"(extrapolated from {audio / 60:.0f} min in {run.seconds:.1f} s)",
        f"real time: {hours * 3600:,.0f} s",
        speed,
        f"{speed:.0f}x real time",
        data={
            "audio_seconds": audio,
            "seconds": run.seconds,
            "peak_rss": run.peak_rss,
            "ffmpeg_peak_rss": run.children_peak_rss,
            "extrapolated_seconds": book,
        },
    )


# --- 4: splitting -------------------------------------------------------------------------


async def splitting(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """Text to chunks in narrator against pysbd segmenting the whole text in one call."""
    rows = []
    cases = (
        ("English", "en", texts.english(sizes.english_bytes), sizes.english_bytes, 5.0),
        ("Chinese", "zh", texts.chinese(sizes.chinese_bytes), sizes.chinese_bytes, None),
    )
    for name, lang, text, size, goal in cases:
        progress(f"splitting: {size / MB:g} MB of {name}")
        began = time.perf_counter()
        chunks = split_document(parse_text(text), lang=lang)
        seconds = time.perf_counter() - began
        segmenter = pysbd.Segmenter(language=lang, clean=False)
        began = time.perf_counter()
        sentences = segmenter.segment(text)
        pysbd_seconds = time.perf_counter() - began
        # Goals are stated per megabyte; a smaller quick run is scaled up to compare.
        per_mb = seconds / size * MB
        met = None if goal is None else per_mb < goal
        rows.append(
            Row(
                f"split {size / MB:g} MB of {name} ({len(text):,} characters) into "
                f"{len(chunks):,} chunks",
                f"{len(text) / seconds / 1000:,.0f}k chars/s ({seconds:.2f} s)",
                f"pysbd, whole text in one call: {len(text) / pysbd_seconds / 1000:,.0f}k "
                f"chars/s ({pysbd_seconds:.2f} s)",
                pysbd_seconds / seconds,
                f"{pysbd_seconds / seconds:.1f}x faster",
                "" if goal is None else f"1 MB < {goal:g} s",
                met,
                {
                    "bytes": size,
                    "characters": len(text),
                    "chunks": len(chunks),
                    "seconds": seconds,
                    "pysbd_seconds": pysbd_seconds,
                    "pysbd_sentences": len(sentences),
                },
            )
        )
        await asyncio.sleep(0)
    return rows


# --- 5: resume ----------------------------------------------------------------------------


async def resume(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """A finished job run again: every chunk comes from the store, none from the service."""
    n = sizes.resume_chunks
    text, _ = _chunked(n, 40)
    cache, output = work.path("cache"), work.path("book.wav")
    flags = ("--max-chars=41", "--concurrency=8", "--rpm=100000")
    async with await start_emulator(EmulatorConfig(api_key=KEY, engine="tone")) as emulator:
        progress(f"resume: first run of {n} chunks")
        first = await narrate(work, emulator, text, *flags, cache=cache, output=output, chunks=n)
        before = emulator.stats.requests
        progress("resume: the same job again, its audiobook deleted")
        output.unlink()
        again = await narrate(work, emulator, text, *flags, cache=cache, output=output, chunks=n)
        requests = emulator.stats.requests - before
        progress("resume: the same job again, its audiobook in place")
        current = await narrate(work, emulator, text, *flags, cache=cache, output=output, chunks=n)
        requests_current = emulator.stats.requests - before - requests
    status = current.report["documents"][0]["status"]
    first_line = f"first run: {first.child.wall:.1f} s, {first.report['requests']:,} requests"
    return [
        Row(
            f"resume: rerun a finished {n:,}-chunk job (audiobook deleted, so rebuilt)",
            f"{again.child.wall:.2f} s to the rebuilt audiobook, {requests} requests",
            first_line,
            again.child.wall / first.child.wall,
            f"{again.child.wall / first.child.wall:.3f}",
            "0 requests",
            requests == 0,
            {
                "chunks": n,
                "seconds": again.child.wall,
                "requests": requests,
                "first_seconds": first.child.wall,
                "first_requests": first.report["requests"],
            },
        ),
        Row(
            f"resume: rerun it again, audiobook in place ({status})",
            f"{current.child.wall:.2f} s, {requests_current} requests",
            first_line,
            current.child.wall / first.child.wall,
            f"{current.child.wall / first.child.wall:.3f}",
            "0 requests",
            requests_current == 0,
            {"chunks": n, "seconds": current.child.wall, "requests": requests_current},
        ),
    ]


# --- 6: client cost -----------------------------------------------------------------------


async def client_cost(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """CPU and peak memory of the narrator process over a long run of short chunks."""
    n = sizes.cost_chunks
    text, _ = _chunked(n, 11)
    progress(f"client cost: {n} chunks, no rate limit, no latency")
    async with await start_emulator(EmulatorConfig(api_key=KEY, engine="tone")) as emulator:
        run = await narrate(
            work,
            emulator,
            text,
            "--max-chars=12",
            "--concurrency=8",
            "--rpm=1000000",
            cache=work.path("cache"),
            chunks=n,
        )
    cpu_per_1000 = run.child.cpu_seconds / n * 1000
    data = {
        "chunks": n,
        "cpu_seconds": run.child.cpu_seconds,
        "peak_rss": run.child.peak_rss,
        "seconds": run.child.wall,
    }
    return [
        Row(
            f"client CPU, 11-character chunks ({n:,}-chunk run, emulator not counted)",
            f"{cpu_per_1000:.2f} s per 1,000 chunks ({run.child.cpu_seconds:.1f} s in all)",
            "goal 2 s",
            cpu_per_1000 / 2,
            f"{cpu_per_1000 / 2:.2f}",
            "< 2 s",
            cpu_per_1000 < 2,
            data,
        ),
        Row(
            f"client peak memory ({n:,}-chunk run)",
            _fmt_mb(run.child.peak_rss),
            "goal 200 MB",
            run.child.peak_rss / (200 * MB),
            f"{run.child.peak_rss / (200 * MB):.2f}",
            "< 200 MB",
            run.child.peak_rss < 200 * MB,
            data,
        ),
    ]


# --- 7: the offline voice ----------------------------------------------------------------


async def offline(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """A short book through eSpeak with the provider's defaults: no rate limit holds it."""
    n = sizes.offline_chunks
    text, _ = _chunked(n, 40)
    source, report_path = work.path("book.txt"), work.path("report.json")
    source.write_text(text, encoding="utf-8")
    progress(f"offline: {n} chunks through eSpeak, default pace")
    child = await run_child(
        work, "cli", "narrate", str(source), "-o", str(work.path("book.wav")),
        "--provider", "espeak", "--cache-dir", str(work.path("cache")), "--max-chars=41",
        "--report", str(report_path), "--quiet",
    )  # fmt: skip
    report = json.loads(report_path.read_text(encoding="utf-8"))
    # What the same run took when eSpeak kept the remote default of 60 requests/minute:
    # one start a second, so at least n - 1 seconds.
    held = float(n - 1)
    return [
        Row(
            f"offline voice: {n} chunks, default pace (rpm {report.get('rpm') or 'no limit'}, "
            f"{report.get('concurrency')} in flight)",
            f"{child.wall:.2f} s, {report['requests']} requests",
            f"at the old --rpm 60: at least {held:.0f} s",
            child.wall / held,
            f"{child.wall / held:.3f}",
            "not held to a rate",
            report.get("rpm") is None and child.wall < held,
            {"chunks": n, "seconds": child.wall, "requests": report["requests"]},
        )
    ]


def _cases() -> tuple[Callable[[Sizes, Workdir, Progress], Any], ...]:
    from .quality import quality  # it needs this module's helpers: imported last

    return (splitting, stitching, throughput, adaptive, resume, client_cost, offline, quality)


CASES = _cases()
