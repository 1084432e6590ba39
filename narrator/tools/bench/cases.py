"""The benchmarks of issue 6, each returning its rows of the table.

The harness (sizes, rows, child processes, narrations) is :mod:`.harness`; throughput
and the adaptive rate are in :mod:`.rates`, the quality gate's benchmark in :mod:`.quality`.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...book.stitch import Piece, stitch_wav
from ...chunks.split import split_document
from ...inputs.documents import parse_text
from ...util.wav import read_wav_info, tone_pcm, wav_bytes
from ..emulator import EmulatorConfig, start_emulator
from . import texts
from .cluster import cluster
from .finish import finishing
from .flac import flac
from .harness import (
    KEY,
    MB,
    ChildRun,
    Progress,
    Row,
    Sizes,
    Workdir,
    chunked,
    faster,
    fmt_mb,
    narrate,
    run_child,
    under_goal,
)
from .quality import quality
from .rates import adaptive, chunk_size, first_request, throughput
from .readalong import readalong

with warnings.catch_warnings():
    # Same as in narrator.chunks.split: pysbd 0.3.4 has invalid escape sequences.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import pysbd

__all__ = ["CASES"]


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
        faster(
            f"stitch {sub_hours:g} h ({subset} x 10 s segments, 0.3 s gaps) to WAV",
            f"{small.seconds:.2f} s, peak {fmt_mb(small.peak_rss)}",
            f"pydub += on the same: {pydub.seconds:.1f} s, peak {fmt_mb(pydub.peak_rss)}",
            pydub.seconds / small.seconds,
            {
                "segments": subset,
                "seconds": small.seconds,
                "peak_rss": small.peak_rss,
                "pydub_seconds": pydub.seconds,
                "pydub_peak_rss": pydub.peak_rss,
            },
            digits=0,
        ),
        under_goal(
            f"stitch {hours:g} h ({whole:,} x 10 s segments) to WAV: time",
            f"{book.seconds:.2f} s",
            book.seconds,
            10,
            "s",
            {"segments": whole, "seconds": book.seconds, "cpu_seconds": book.cpu_seconds},
        ),
        under_goal(
            f"stitch {hours:g} h to WAV: peak memory",
            fmt_mb(book.peak_rss),
            book.peak_rss / MB,
            150,
            "MB",
            {"segments": whole, "peak_rss": book.peak_rss},
        ),
    ]
    return [*rows, await _encoding(sizes, work, progress, segments, hours)]


async def _encoding(
    sizes: Sizes, work: Workdir, progress: Progress, segments: list[str], hours: float
) -> Row:
    """M4B through narrator.book.encode, on a subset: AAC runs at a fixed multiple of real time."""
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
        f"encode {hours:g} h to M4B",
        f"{book:.0f} s, peak {fmt_mb(max(run.peak_rss, run.children_peak_rss))} "
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
            faster(
                f"split {size / MB:g} MB of {name} ({len(text):,} characters) into "
                f"{len(chunks):,} chunks",
                f"{len(text) / seconds / 1000:,.0f}k chars/s ({seconds:.2f} s)",
                f"pysbd, whole text in one call: {len(text) / pysbd_seconds / 1000:,.0f}k "
                f"chars/s ({pysbd_seconds:.2f} s)",
                pysbd_seconds / seconds,
                {
                    "bytes": size,
                    "characters": len(text),
                    "chunks": len(chunks),
                    "seconds": seconds,
                    "pysbd_seconds": pysbd_seconds,
                    "pysbd_sentences": len(sentences),
                },
                goal="" if goal is None else f"1 MB < {goal:g} s",
                met=met,
            )
        )
        await asyncio.sleep(0)
    return rows


# --- 5: resume ----------------------------------------------------------------------------


async def resume(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """A finished job run again: every chunk comes from the store, none from the service."""
    n = sizes.resume_chunks
    text, _ = chunked(n, 40)
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
    text, _ = chunked(n, 11)
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
        under_goal(
            f"client CPU, 11-character chunks ({n:,}-chunk run, emulator not counted)",
            f"{cpu_per_1000:.2f} s per 1,000 chunks ({run.child.cpu_seconds:.1f} s in all)",
            cpu_per_1000,
            2,
            "s",
            data,
        ),
        under_goal(
            f"client peak memory ({n:,}-chunk run)",
            fmt_mb(run.child.peak_rss),
            run.child.peak_rss / MB,
            200,
            "MB",
            data,
        ),
    ]


# --- 7: the offline voice ----------------------------------------------------------------


async def offline(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """A short book through eSpeak with the provider's defaults: no rate limit holds it."""
    n = sizes.offline_chunks
    text, _ = chunked(n, 40)
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


#: Every benchmark, in the order the table shows them.
CASES: tuple[Callable[[Sizes, Workdir, Progress], Any], ...] = (
    splitting, stitching, throughput, first_request, adaptive, chunk_size, resume, client_cost,
    offline, quality, finishing, flac, readalong, cluster,
)  # fmt: skip
