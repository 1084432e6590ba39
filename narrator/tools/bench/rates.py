"""Throughput against a rate-limited service, the adaptive rate, and the chunk size."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from ...chunks.split import split_document
from ...inputs.documents import parse_text
from ...util.registry import spec
from ..emulator import MODEL, EmulatorConfig, start_emulator
from . import texts
from .harness import (
    KEY,
    BenchError,
    Narration,
    Progress,
    Row,
    Sizes,
    Workdir,
    at_least,
    chunked,
    faster,
    narrate,
    under_goal,
)

__all__ = ["adaptive", "chunk_size", "first_request", "sequential_client", "throughput"]


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
    text, lines = chunked(n, 100)
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
    timed = {**common, "rate": rate, "ideal": ideal, "seconds": elapsed}
    cpu = {"cpu_seconds": run.child.cpu_seconds, "chunks": n, "peak_rss": run.child.peak_rss}
    return [
        at_least(
            f"throughput: {n} chunks, 1,200/min allowed, {latency:g} s latency, "
            f"--concurrency {concurrency} --rpm {rpm}",
            f"{rate:.2f} chunks/s ({elapsed:.1f} s, first request to audiobook)"
            + _partial(run, done, n),
            f"ideal {ideal:.2f}/s = min(rpm/60, concurrency/latency)",
            rate / ideal,
            0.95,
            {**timed, "process_seconds": run.child.wall, "max_in_flight": max_in_flight},
        ),
        faster(
            "throughput vs a sequential client (the seed's example in a loop)",
            f"{rate:.2f} chunks/s",
            f"{seq_rate:.2f} chunks/s: {k} chunks timed, {n / seq_rate:.0f} s for {n} extrapolated",
            rate / seq_rate,
            {"rate": rate, "sequential_rate": seq_rate, "sequential_chunks": k},
        ),
        under_goal(
            f"client CPU, 100-character chunks ({n}-chunk throughput run)",
            f"{cpu_per_1000:.2f} s per 1,000 chunks",
            cpu_per_1000,
            2,
            "s",
            cpu,
        ),
    ]


async def first_request(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """How soon the first request leaves (after imports), for a short book and a long
    one, and what a short run at a high limit reaches end to end."""
    rpm, concurrency, latency, max_chars = 1200, 8, 0.3, 600
    ideal = min(rpm / 60, concurrency / latency)
    rows: list[Row] = []
    for size, whole in ((sizes.first_request_bytes, True), (sizes.english_bytes, False)):
        text = texts.english(size)
        n = len(split_document(parse_text(text), max_chars=max_chars))
        config = EmulatorConfig(api_key=KEY, engine="tone", rpm=rpm, latency=latency)
        what = f"{size / 1000:,.0f} KB of English ({n:,} chunks)"
        progress(f"first request: {what}" + ("" if whole else ", stopped after a few seconds"))
        async with await start_emulator(config) as emulator:
            run = await narrate(
                work, emulator, text, f"--concurrency={concurrency}", f"--rpm={rpm}",
                cache=work.path("cache"), chunks=n,
                time_limit=_limit(n / ideal) if whole else 20.0,
            )  # fmt: skip
            stats = emulator.stats
            if not stats.starts or run.child.imported is None:
                raise BenchError(f"first request: {what}: no request, or no import time")
            done = _successes(stats.statuses)
            first = stats.starts[0] - run.child.imported
        data = {"bytes": size, "chunks": n, "seconds_after_imports": first,
                "imports": run.child.imported - run.child.started}  # fmt: skip
        rows.append(
            under_goal(
                f"time to first request, {what}, after imports",
                f"{first:.2f} s (imports {data['imports']:.2f} s)",
                first,
                0.5,
                "s",
                data,
            )
        )
        if whole:
            elapsed = run.child.ended - run.child.imported
            rate = done / elapsed
            rows.append(
                at_least(
                    f"end to end at a high limit: {what}, --rpm {rpm} --concurrency "
                    f"{concurrency}, {latency:g} s latency, WAV",
                    f"{rate:.2f} chunks/s ({elapsed:.1f} s from imports to exit)"
                    + _partial(run, done, n),
                    f"the limit: {ideal:.2f}/s = min(rpm/60, concurrency/latency)",
                    rate / ideal,
                    0.9,
                    {**data, "rate": rate, "ideal": ideal, "seconds": elapsed},
                )
            )
    return rows


async def adaptive(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """The throughput run, but the service allows 300/min while narrator is told 1,200."""
    n, latency, allowed, told = sizes.chunks, sizes.latency, 300, 1200
    text, _ = chunked(n, 100)
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
        at_least(
            f"adaptive rate: service allows {allowed}/min, narrator told --rpm {told}",
            f"{achieved:.0f} chunks/min ({done} in {elapsed:.1f} s)" + _partial(run, done, n),
            f"{allowed}/min allowed",
            achieved / allowed,
            0.9,
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


# The chunk sizes compared for a service that takes 4,096 characters a request (OpenAI).
_CHUNK_SIZES = (600, 1500, 4096)


async def chunk_size(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """The same English text through the OpenAI emulator at a per-request limit, with a
    latency that grows with the text, at several ``--max-chars``: requests and wall time.

    Scaled from OpenAI's first tier (50/min) to 120/min, 0.2 s + 0.5 ms a character, so
    the runs take seconds while the per-request limit, not the latency, still binds at
    600 characters (38 requests: 19 s at the limit, 5 s of latency over 4 in flight).
    """
    rpm, concurrency, base, per_char = 120, 4, 0.2, 0.0005
    text = texts.english(sizes.chunk_size_chars)
    chosen = spec("openai").max_chars
    results: dict[int, dict[str, float]] = {}
    for max_chars in _CHUNK_SIZES:
        n = len(split_document(parse_text(text), max_chars=max_chars))
        config = EmulatorConfig(
            api="openai", api_key=KEY, engine="tone", rpm=rpm, latency=base,
            latency_per_char=per_char,
        )  # fmt: skip
        progress(f"chunk size: --max-chars {max_chars}, {n} requests")
        async with await start_emulator(config) as emulator:
            run = await narrate(
                work, emulator, text, "--provider=openai", f"--max-chars={max_chars}",
                f"--concurrency={concurrency}", f"--rpm={rpm}",
                cache=work.path(f"cache-{max_chars}"), chunks=n,
            )  # fmt: skip
            first = emulator.stats.starts[0]
            requests = emulator.stats.requests
        # A kill -9 loses the requests in flight: at most ``concurrency`` chunks.
        results[max_chars] = {
            "requests": requests,
            "seconds": run.child.ended - first,
            "kill_loses_chars": concurrency * max_chars,
        }
    small, best = results[_CHUNK_SIZES[0]], results[chosen]
    ratio = small["seconds"] / best["seconds"]
    figures = ", ".join(
        f"{m}: {r['requests']:.0f} req {r['seconds']:.1f} s" for m, r in results.items()
    )
    return [
        faster(
            f"chunk size, openai at a per-request limit ({rpm}/min, {base:g} s + "
            f"{per_char * 1000:g} ms/char latency): default --max-chars {chosen} vs 600",
            figures,
            f"a kill loses at most {concurrency} chunks in flight: "
            f"{concurrency * chosen:,} characters at {chosen}",
            ratio,
            {str(m): r for m, r in results.items()},
            goal="> 1x",
            met=ratio > 1,
        )
    ]
