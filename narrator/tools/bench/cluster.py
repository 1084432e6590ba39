"""Several machines on one account (issue 24, item 7): ``narrator worker`` processes on one
Redis queue, against the emulator holding each account to its rate across all keys.

Every figure is a ratio measured in one run. One emulator is one account: its ``rpm`` is
enforced on every request whatever the key, like Alibaba Model Studio's per-account limit.
The answers are speech-like (the ``speech`` engine), each taking longer for a longer text,
at the service's shape (as in :mod:`.finish`). Workers, ``submit`` and ``narrate`` are real
child processes (``narrator.tools.bench.child``, so their CPU is their own); the queue is a
private ``redis-server`` on a free loopback port, gone at the end; the workers of a run
share one cache folder (one machine, or a shared disk).

- **one account, three workers**: their aggregate pace against the account's limit, and
  the share of requests answered 429; for contrast, three plain ``narrate`` runs side by
  side on the same account (each pacing itself at the account's rpm, as three machines do
  today), measured the same way.
- **three accounts, three workers**: their throughput against one worker's on one account.
- **a worker killed** (SIGKILL) mid-run: every book complete, and the chunks billed twice
  against that worker's ``--concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...util.wav import read_wav_info
from ..emulator import EmulatorConfig, RunningEmulator, start_emulator
from . import texts
from .harness import KEY, BenchError, ChildRun, Progress, Row, Sizes, Workdir, at_least, run_child
from .workers import BOUND, WorkerProcess, check_worker, private_redis, start_worker

__all__ = ["cluster"]

RPM = 360  # the account's limit: 6 requests a second, across every key and worker
MAX_CHARS = 150  # a chunk: 10 s of speech
LATENCY = 0.5  # seconds a request takes, plus
LATENCY_PER_CHAR = 0.004  # this per billing character (as in .finish): 1.1 s a chunk
CONCURRENCY = 12  # each process's --concurrency: enough that the rate binds, not latency
HEARTBEAT = 3.0  # seconds before a dead worker's documents go to another (default 20)
WORKERS = 3
PACE_GOAL = 0.95
THROTTLED_GOAL = 0.01
SCALE_GOAL = 2.8


async def cluster(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """The rows of item 7; see the module docstring."""
    await check_worker()
    async with private_redis(work.path("redis")) as redis_url:
        bench = _Bench(sizes, work, progress, redis_url)
        rows: list[Row] = []
        for name, run in (
            ("cluster: one account", bench.one_account),
            ("cluster: plain narrate", bench.plain_narrate),
            ("cluster: three accounts", bench.three_accounts),
            ("cluster: a worker killed", bench.killed),
        ):
            try:  # a run that cannot be measured is one failed row; the others still run
                rows += await run()
            except BenchError as exc:
                rows.append(Row(name, f"failed: {exc}", "", goal="runs", met=False))
    return rows


class _Bench:
    """The runs, each with its own emulator(s), queue name, cache and books."""

    def __init__(self, sizes: Sizes, work: Workdir, progress: Progress, redis_url: str) -> None:
        self.sizes = sizes
        self.work = work
        self.progress = progress
        self.redis_url = redis_url
        self.runs = 0

    # -- building blocks --

    def documents(self, count: int, name: str) -> Path:
        """``count`` documents of ``sizes.cluster_chunks`` chunks each, no two alike."""
        return self.shares(count, name, 1)[0]

    def shares(self, count: int, name: str, parts: int) -> list[Path]:
        """The same documents dealt into ``parts`` folders, in turn."""
        folders = [self.work.path(name) for _ in range(parts)]
        for folder in folders:
            folder.mkdir()
        k = self.sizes.cluster_chunks
        for n in range(count):
            # numbered_lines is seeded by its count: k + n lines make words of this
            # document's own, so no chunk is billed for two documents.
            lines = texts.numbered_lines(k + n, width=MAX_CHARS - 1).split("\n\n")[:k]
            doc = folders[n % parts] / f"doc{n:04d}.txt"
            doc.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
        return folders

    def service(self, emulator: RunningEmulator, key: str) -> list[str]:
        return ["--base-url", emulator.url, "--api-key", key, "--rpm", str(RPM),
                "--concurrency", str(CONCURRENCY), "--max-chars", str(MAX_CHARS),
                "--yes"]  # fmt: skip

    async def emulator(self, key: str = KEY) -> RunningEmulator:
        config = EmulatorConfig(
            api_key=key, engine="speech", rpm=RPM, latency=LATENCY,
            latency_per_char=LATENCY_PER_CHAR,
        )  # fmt: skip
        return await start_emulator(config)

    async def worker(
        self, queue: list[str], root: Path, cache: Path, emulator: RunningEmulator, key: str
    ) -> WorkerProcess:
        return await start_worker(
            self.work, *queue, "-o", str(root), "--cache-dir", str(cache),
            "--heartbeat", f"{HEARTBEAT:g}", *self.service(emulator, key),
        )  # fmt: skip

    async def workers(
        self, emulators: Sequence[tuple[RunningEmulator, str]], cache: Path
    ) -> tuple[list[str], Path, list[WorkerProcess]]:
        """Workers on a fresh queue name, one per (emulator, key); ready to take jobs."""
        self.runs += 1
        queue = ["--queue", self.redis_url, "--queue-name", f"bench{self.runs}"]
        root = self.work.path("books")
        root.mkdir()
        started = [await self.worker(queue, root, cache, e, k) for e, k in emulators]
        try:
            await asyncio.gather(*(w.ready() for w in started))
        except BaseException:
            for w in started:
                await w.kill()
            raise
        return queue, root, started

    async def narrate(self, inputs: Path, emulator: RunningEmulator, limit: float) -> ChildRun:
        """A plain ``narrate`` of a folder, with a store of its own (a machine of its own)."""
        return await run_child(
            self.work, "cli", "narrate", str(inputs), "-o", str(self.work.path("books")),
            "--cache-dir", str(self.work.path("cache")), "--quiet",
            *self.service(emulator, KEY), time_limit=limit,
        )  # fmt: skip

    async def submit(self, queue: list[str], inputs: Path, dest: Path) -> None:
        """``submit --wait`` of a folder: returns when every book is done (exit 0)."""
        await run_child(
            self.work, "cli", "submit", str(inputs), *queue, "-o", str(dest), "--wait",
            "--quiet", "--max-chars", str(MAX_CHARS), "--yes",
        )  # fmt: skip

    def books(self, dest: Path, count: int) -> int:
        """How many of the ``count`` books under ``dest`` are complete WAVs."""
        found = [p for p in dest.rglob("*.wav") if read_wav_info(p).seconds > 0]
        if len(found) > count:
            raise BenchError(f"{len(found)} books for {count} documents")
        return len(found)

    # -- the runs --

    async def one_account(self) -> list[Row]:
        n = self.sizes.cluster_documents
        chunks = n * self.sizes.cluster_chunks
        inputs = self.documents(n, "docs-one-account")
        self.progress(f"cluster: {WORKERS} workers, one account at {RPM}/min, {chunks} chunks")
        async with await self.emulator() as emulator:
            keys = [(emulator, KEY)] * WORKERS  # three machines, one account, one key
            queue, root, workers = await self.workers(keys, self.work.path("cache"))
            try:
                await self.submit(queue, inputs, root / "run")
            finally:
                usage = [await w.stop() for w in workers]
            measured = _measure([emulator])
        books = self.books(root / "run", n)
        if books != n or measured["done"] < chunks:
            raise BenchError(f"one account: {books} of {n} books, {measured['done']} chunks")
        cpu = sum(u["cpu_seconds"] for u in usage)
        data = {**measured, "documents": n, "chunks": chunks, "workers": WORKERS,
                "workers_cpu_seconds": cpu}  # fmt: skip
        return _pace_rows(f"{WORKERS} workers on one account", measured, data, goals=True)

    async def plain_narrate(self) -> list[Row]:
        n = self.sizes.cluster_documents
        chunks = n * self.sizes.cluster_chunks
        # Three machines today: a third of the documents each, each with a store of its own.
        shares = self.shares(n, "docs-narrate", WORKERS)
        self.progress(f"cluster: {WORKERS} plain narrate runs side by side, one account")
        # Their adaptive cuts can hold them far below the limit for long: past twice the
        # ideal time they are stopped (SIGTERM), and the pace is what they had reached.
        limit = 2 * chunks / RPM * 60 + 15
        async with await self.emulator() as emulator:
            runs = await asyncio.gather(*(self.narrate(s, emulator, limit) for s in shares))
            measured = _measure([emulator])
        stopped = sum(run.stopped for run in runs)
        if measured["done"] < chunks and not stopped:
            raise BenchError(f"plain narrate: {measured['done']} of {chunks} chunks")
        data = {**measured, "documents": n, "chunks": chunks, "processes": WORKERS,
                "stopped_at_time_limit": stopped, "time_limit": limit}  # fmt: skip
        note = f"; {stopped} STOPPED at {limit:.0f} s" if stopped else ""
        return _pace_rows(
            f"for contrast: {WORKERS} plain narrate runs side by side on one account",
            measured,
            data,
            goals=False,
            note=note,
        )

    async def three_accounts(self) -> list[Row]:
        n = self.sizes.cluster_documents
        self.progress(f"cluster: one worker, one account, {n * self.sizes.cluster_chunks} chunks")
        async with await self.emulator() as emulator:
            queue, root, (worker,) = await self.workers([(emulator, KEY)], self.work.path("cache"))
            try:
                await self.submit(queue, self.documents(n, "docs-one-worker"), root / "run")
            finally:
                await worker.stop()
            one = _measure([emulator])
        total = n * WORKERS
        self.progress(f"cluster: {WORKERS} workers, {WORKERS} accounts, {total} documents")
        keys = [f"{KEY}-{i}" for i in range(WORKERS)]  # three accounts, a key each
        async with contextlib.AsyncExitStack() as stack:
            emulators = [await stack.enter_async_context(await self.emulator(k)) for k in keys]
            queue, root, workers = await self.workers(
                list(zip(emulators, keys, strict=True)), self.work.path("cache")
            )
            try:
                await self.submit(queue, self.documents(total, "docs-three"), root / "run")
            finally:
                for w in workers:
                    await w.stop()
            three = _measure(emulators)
        ratio = three["rate"] / one["rate"]
        row = Row(
            f"{WORKERS} workers on {WORKERS} accounts ({RPM}/min each) against one worker on one",
            f"{three['rate'] * 60:.0f} chunks/min ({three['done']} in {three['seconds']:.1f} s)",
            f"one worker: {one['rate'] * 60:.0f} chunks/min ({one['done']} in "
            f"{one['seconds']:.1f} s)",
            ratio,
            f"{ratio:.2f}x",
            f">= {SCALE_GOAL:g}x",
            ratio >= SCALE_GOAL,
            {"three": three, "one": one, "documents_each": n},
        )
        # What one worker alone reaches of its account's limit: the reference above, and
        # what a document handed over costs (each worker holds its default --documents at a time).
        alone = one["rate"] * 60 / RPM
        return [
            row,
            Row(
                f"one worker alone on one account ({self.sizes.cluster_chunks}-chunk "
                "documents, the default --documents): pace",
                f"{one['rate'] * 60:.0f} chunks/min ({one['done']} in {one['seconds']:.1f} s)",
                f"the account's limit: {RPM}/min",
                alone,
                f"{alone:.3f}",
                data=one,
            ),
        ]

    async def killed(self) -> list[Row]:
        n = self.sizes.cluster_documents
        chunks = n * self.sizes.cluster_chunks
        inputs = self.documents(n, "docs-killed")
        self.progress(f"cluster: {WORKERS} workers, one killed (SIGKILL) mid-run")
        async with await self.emulator() as emulator:
            queue, root, workers = await self.workers(
                [(emulator, KEY)] * WORKERS, self.work.path("cache")
            )
            doomed = workers[0]
            try:
                submit = asyncio.ensure_future(self.submit(queue, inputs, root / "run"))
                while True:  # until 40% of the chunks are done
                    if _successes(emulator) >= chunks * 0.4 or submit.done():
                        break
                    await asyncio.sleep(0.05)
                at_kill = _successes(emulator)
                await doomed.kill()
                await asyncio.wait_for(submit, BOUND + chunks / RPM * 60 * 2)
            finally:
                await doomed.kill()
                for w in workers[1:]:
                    await w.stop()
            billed = dict(emulator.stats.billed)
        rebilled = sum(times - 1 for times in billed.values())
        books = self.books(root / "run", n)
        complete = books == n and len(billed) == chunks
        row = Row(
            f"a worker killed (SIGKILL) mid-run, {WORKERS} workers on one account: chunks "
            "billed twice",
            f"{rebilled} billed twice, {books} of {n} books complete (killed at "
            f"{at_kill} of {chunks} chunks)",
            f"the killed worker's --concurrency {CONCURRENCY}",
            rebilled / CONCURRENCY,
            f"{rebilled / CONCURRENCY:.2f}",
            f"<= {CONCURRENCY}, every book",
            complete and rebilled <= CONCURRENCY,
            {"rebilled": rebilled, "books": books, "documents": n, "chunks": chunks,
             "distinct_billed": len(billed), "killed_at": at_kill,
             "concurrency": CONCURRENCY, "heartbeat": HEARTBEAT},
        )  # fmt: skip
        return [row]


# --- what the emulators saw -----------------------------------------------------------------


def _successes(emulator: RunningEmulator) -> int:
    statuses = emulator.stats.statuses
    return statuses.get(200, 0) + statuses.get(201, 0)


def _measure(emulators: Sequence[RunningEmulator]) -> dict[str, Any]:
    """Chunks done, requests, 429s and the pace: done from the first request anywhere to
    the last answer anywhere (the tail of the last request counts against the run)."""
    done = sum(_successes(e) for e in emulators)
    requests = sum(e.stats.requests for e in emulators)
    throttled = sum(e.stats.statuses.get(429, 0) for e in emulators)
    starts = [e.stats.starts[0] for e in emulators if e.stats.starts]
    ends = [e.stats.last_success for e in emulators if e.stats.last_success is not None]
    if not starts or not ends:
        raise BenchError("no request reached the emulator")
    seconds = max(ends) - min(starts)
    return {"done": done, "requests": requests, "throttled": throttled, "seconds": seconds,
            "rate": done / seconds, "rpm": RPM * len(emulators)}  # fmt: skip


def _pace_rows(
    what: str, m: dict[str, Any], data: dict[str, Any], *, goals: bool, note: str = ""
) -> list[Row]:
    pace = m["rate"] * 60 / RPM
    share = m["throttled"] / m["requests"]
    figure = f"{m['rate'] * 60:.0f} chunks/min ({m['done']} in {m['seconds']:.1f} s{note})"
    limit = f"the account's limit: {RPM}/min across all keys"
    if goals:
        pace_row = at_least(f"{what}: aggregate pace", figure, limit, pace, PACE_GOAL, data)
    else:
        pace_row = Row(f"{what}: aggregate pace", figure, limit, pace, f"{pace:.3f}", data=data)
    return [
        pace_row,
        Row(
            f"{what}: requests answered 429",
            f"{share:.1%} ({m['throttled']} of {m['requests']})",
            f"goal at most {THROTTLED_GOAL:.0%}" if goals else "no goal: the contrast",
            share / THROTTLED_GOAL,
            f"{share / THROTTLED_GOAL:.2f}",
            f"<= {THROTTLED_GOAL:.0%}" if goals else "",
            share <= THROTTLED_GOAL if goals else None,
            data,
        ),
    ]
