"""What every benchmark uses: sizes, rows, measured child processes and narrations.

Everything that the figures are about runs as a separate process (``python -m
narrator.tools.bench.child``), so its CPU time and peak memory are its own; the emulator
runs in the benchmark process, on loopback, and its cost is not counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...chunks.split import split_document
from ...inputs.documents import parse_text
from ..emulator import RunningEmulator
from . import texts

__all__ = [
    "FULL",
    "KEY",
    "MB",
    "QUICK",
    "BenchError",
    "ChildRun",
    "Narration",
    "Progress",
    "Row",
    "Sizes",
    "Workdir",
    "at_least",
    "chunked",
    "faster",
    "fmt_mb",
    "narrate",
    "run_child",
    "under_goal",
]

KEY = "bench-key"
MB = 1_000_000


class BenchError(Exception):
    """A benchmark could not run (a child process failed, an input came out wrong).

    The bench's own, not one of the library's errors: the runner turns it into a
    "failed" row and goes on with the other benchmarks.
    """


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
    chunk_size_chars: int = 20_000  # the chunk-size comparison's text (38 chunks at 600)
    finish_hours: float = 10.0  # audio in the finishing runs (first request to finished file)
    finish_short_hours: float = 5 / 3  # and in the short ones (1 h 40 min)
    first_request_bytes: int = 120_000  # the time-to-first-request run's text
    cluster_documents: int = 45  # documents a run of the cluster rows gives each account
    cluster_chunks: int = 8  # chunks in each of them (45 x 8 at 360/min: a minute a run)


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
    chunk_size_chars=8_000,
    finish_hours=0.5,
    finish_short_hours=0.25,
    first_request_bytes=30_000,
    cluster_documents=12,
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
    imported: float | None = None  # loop time a narration's imports were done

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
        data.get("imported"),
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


def chunked(count: int, width: int) -> tuple[str, list[str]]:
    """A text of ``count`` one-chunk lines under ``--max-chars width + 1``, and the lines."""
    text = texts.numbered_lines(count, width=width)
    pieces = split_document(parse_text(text), max_chars=width + 1)
    if len(pieces) != count:  # the arithmetic of numbered_lines no longer holds
        raise BenchError(f"expected {count} chunks, the splitter made {len(pieces)}")
    return text, [p.text for p in pieces]


def fmt_mb(size: float) -> str:
    return f"{size / MB:,.0f} MB" if size >= 10 * MB else f"{size / MB:.1f} MB"


# --- rows the same way: the ratio's text, the goal and whether it is met follow from it ---


def under_goal(
    what: str, figure: str, value: float, goal: float, unit: str, data: dict[str, Any]
) -> Row:
    """A figure held under a ceiling ("goal 2 s"): the ratio is ``value / goal``."""
    ratio = value / goal
    ceiling = f"{goal:g} {unit}"
    return Row(
        what, figure, f"goal {ceiling}", ratio, f"{ratio:.2f}", f"< {ceiling}", value < goal, data
    )


def at_least(
    what: str, figure: str, reference: str, ratio: float, floor: float, data: dict[str, Any]
) -> Row:
    """A share of an ideal that must reach ``floor`` (">= 0.95")."""
    return Row(
        what, figure, reference, ratio, f"{ratio:.3f}", f">= {floor:g}", ratio >= floor, data
    )


def faster(
    what: str,
    figure: str,
    reference: str,
    ratio: float,
    data: dict[str, Any],
    *,
    digits: int = 1,
    goal: str = "",
    met: bool | None = None,
) -> Row:
    """narrator against another way of doing the same thing: "12.3x faster"."""
    return Row(what, figure, reference, ratio, f"{ratio:.{digits}f}x faster", goal, met, data)
