"""Several workers and a shared store that goes away: real ``narrator worker`` processes
on the shared PostgreSQL store (a schema of each test's own) and the shared S3 server (a
prefix of each test's own), one of the two reached through a loopback proxy the test cuts
mid-run (tests/faults.py; the shared servers are never touched). The workers pause with one
line naming what they wait for, carry on when it is back, and lose nothing: every book as
one machine makes it, each chunk billed once. A worker stopped during an outage still
ends, keeping what it could not record for the next run."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY, run_cli
from .faults import LoopbackProxy
from .test_cluster import BOUND, Cluster, Proc, _books, _folder

SECRET = "hunter2-not-shown"  # the test server trusts loopback: a password it ignores
DOCUMENTS = 3


@pytest.fixture
def pg_proxy(postgres_schema: str) -> Iterator[tuple[str, LoopbackProxy]]:
    """The test's schema reached through a proxy (with a password the server ignores)."""
    parts = urllib.parse.urlsplit(postgres_schema)
    proxy = LoopbackProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    netloc = f"{parts.username}:{SECRET}@{proxy.address}"
    try:
        yield urllib.parse.urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        proxy.close()


@pytest.fixture
def s3_proxy(s3_url: str) -> Iterator[tuple[str, LoopbackProxy]]:
    """The test's object prefix reached through a proxy."""
    with LoopbackProxy.in_front_of(s3_url) as proxy:
        yield proxy.url, proxy


async def _workers(cluster: Cluster, tmp_path: Path, store: str, objects: str) -> list[Proc]:
    """Three workers, one document each at a time, each with a cache folder of its own
    (the account's concurrency, 3, is shared: about one request in flight per worker)."""

    def options(n: int) -> list[str]:
        return ["--store", store, "--objects", objects, "--cache-dir",
                str(tmp_path / f"cache{n}"), "--documents", "1", "--concurrency", "3"]  # fmt: skip

    return list(await asyncio.gather(*(cluster.worker(*options(n)) for n in range(3))))


async def _begun(cluster: Cluster) -> None:
    """The first chunks are in: every worker holds a document (one each) far from done."""
    try:
        await cluster.until_state(
            lambda found: (
                len(found) == DOCUMENTS and any(s.state == "running" and s.done > 0 for s in found)
            ),
            "a document begun",
        )
    except TimeoutError:
        said = "\n".join(w.text for w in cluster.workers)
        raise AssertionError(f"{cluster.states()}\n{said}") from None


async def _until_said(procs: list[Proc], line: str) -> None:
    for proc in procs:
        await proc.until(line)


def _claimed_unfinished(url: str) -> int:
    """Chunks claimed in the store at ``url`` and not yet downloaded."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM claims c LEFT JOIN segments s ON s.key = c.key "
            "WHERE s.state IS DISTINCT FROM 'downloaded'"
        ).fetchone()
    return int(row[0]) if row else 0


async def _check_books(
    cluster: Cluster, inputs: Path, tmp_path: Path, quick: RunningEmulator
) -> None:
    """Every book is what one machine makes of the same folder (on a quick emulator with
    the same voice); each chunk billed once."""
    billed = dict(cluster.emulator.stats.billed)
    assert billed and set(billed.values()) == {1}, billed
    local = await run_cli(
        "narrate", str(inputs), "-o", str(tmp_path / "local"), "--cache-dir",
        str(tmp_path / "own-cache"), "--quiet", "--base-url", quick.url, "--api-key", TEST_KEY,
        "--rpm", "6000", "--max-chars", "80",
    )  # fmt: skip
    assert local.code == 0, local.stderr
    books = _books(cluster.root / "run")
    assert len(books) == DOCUMENTS and books == _books(tmp_path / "local")


async def test_workers_pause_while_postgresql_is_away_and_lose_nothing(
    redis_url: str,
    slow_emulator: RunningEmulator,
    emulator: RunningEmulator,
    pg_proxy: tuple[str, LoopbackProxy],
    postgres_schema: str,
    s3_url: str,
    tmp_path: Path,
) -> None:
    store, proxy = pg_proxy
    cluster = Cluster(redis_url, slow_emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", DOCUMENTS, paragraphs=20)
        workers = await _workers(cluster, tmp_path, store, s3_url)
        submit = await cluster.submit(inputs, cluster.root / "run", "--wait")
        await _begun(cluster)
        proxy.cut()
        paid = slow_emulator.stats.requests
        waiting = f"waiting for PostgreSQL at {proxy.address} "
        await _until_said(workers, waiting)
        await asyncio.sleep(1.5)  # an outage of a while
        # Paused: no chunk is claimed while the store is away, so what is sent meanwhile
        # is only what was claimed before the cut (read on the server itself, not cut).
        claimed = await asyncio.to_thread(_claimed_unfinished, postgres_schema)
        assert slow_emulator.stats.requests - paid <= claimed
        proxy.restore()
        assert await submit.wait() == 0, submit.text
        assert f"{DOCUMENTS} documents done, 0 failed" in submit.text
        for worker in workers:
            assert worker.text.count(waiting) == 1, worker.text
            assert worker.text.count(f"PostgreSQL at {proxy.address} is back") == 1, worker.text
            assert SECRET not in worker.text
        await _check_books(cluster, inputs, tmp_path, emulator)
    finally:
        await cluster.close()


async def test_workers_pause_while_the_object_store_is_away_and_lose_nothing(
    redis_url: str,
    slow_emulator: RunningEmulator,
    emulator: RunningEmulator,
    postgres_schema: str,
    s3_proxy: tuple[str, LoopbackProxy],
    tmp_path: Path,
) -> None:
    objects, proxy = s3_proxy
    cluster = Cluster(redis_url, slow_emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", DOCUMENTS, paragraphs=20)
        workers = await _workers(cluster, tmp_path, postgres_schema, objects)
        submit = await cluster.submit(inputs, cluster.root / "run", "--wait")
        await _begun(cluster)
        proxy.cut()
        waiting = f"waiting for the object store at {proxy.address}"
        await _until_said(workers, waiting)
        await asyncio.sleep(1.5)
        proxy.restore()
        assert await submit.wait() == 0, submit.text
        assert f"{DOCUMENTS} documents done, 0 failed" in submit.text
        for worker in workers:
            assert worker.text.count(waiting) == 1, worker.text
            assert f"the object store at {proxy.address} is back" in worker.text, worker.text
        await _check_books(cluster, inputs, tmp_path, emulator)
    finally:
        await cluster.close()


async def test_a_worker_stopped_while_postgresql_is_away_ends_and_keeps_what_was_paid(
    redis_url: str,
    slow_emulator: RunningEmulator,
    pg_proxy: tuple[str, LoopbackProxy],
    tmp_path: Path,
) -> None:
    store, proxy = pg_proxy
    cluster = Cluster(redis_url, slow_emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", 1, paragraphs=30)
        cache = tmp_path / "cache0"
        leaving = await cluster.worker(
            "--store", store, "--cache-dir", str(cache), "--documents", "1"
        )
        submit = await cluster.submit(inputs, cluster.root / "run")
        assert await submit.wait() == 0, submit.text
        await cluster.until_state(
            lambda found: any(s.state == "running" and 0 < s.done for s in found), "begun"
        )
        proxy.cut()
        await leaving.until(f"waiting for PostgreSQL at {proxy.address} ")
        async with asyncio.timeout(BOUND):
            code = await leaving.stop(signal.SIGTERM)  # ends although the server is away
        assert code == 0, leaving.text
        assert SECRET not in leaving.text
        # One line says what was not recorded; the paid links are kept in the reserve.
        (said,) = [line for line in leaving.lines if "as the run stopped" in line]
        assert f"PostgreSQL at {proxy.address} was out of reach" in said
        assert re.search(r"\d+ paid links kept in .*reserve", said), said
        assert "lost" not in said
        assert "handed back to the queue" in leaving.text
        proxy.restore()
        # The next worker on the same cache folder finishes the book, paying nothing twice.
        await cluster.worker("--store", store, "--cache-dir", str(cache), "--documents", "1")
        found = await cluster.until_state(lambda f: f and all(s.final for s in f), "done")
        assert [s.state for s in found] == ["done"], found
        assert set(slow_emulator.stats.billed.values()) == {1}, slow_emulator.stats.billed
        assert (cluster.root / "run" / "doc00.wav").stat().st_size > 0
    finally:
        await cluster.close()


async def test_a_worker_stopped_while_waiting_to_open_the_store_ends_and_hands_it_back(
    redis_url: str,
    emulator: RunningEmulator,
    pg_proxy: tuple[str, LoopbackProxy],
    tmp_path: Path,
) -> None:
    store, proxy = pg_proxy
    cluster = Cluster(redis_url, emulator, tmp_path)
    try:
        proxy.cut()  # before the worker opens the store for its document
        waiting = await cluster.worker("--store", store, "--documents", "1")
        submit = await cluster.submit(_folder(tmp_path / "in", 1), cluster.root / "run")
        assert await submit.wait() == 0, submit.text
        await waiting.until(f"waiting for PostgreSQL at {proxy.address} ")
        assert await waiting.stop(signal.SIGTERM) == 0, waiting.text  # the server still away
        assert "handed back to the queue" in waiting.text
        (state,) = await asyncio.to_thread(cluster.states)
        assert state.state == "queued" and state.tries == 1
        assert emulator.stats.requests == 0
    finally:
        await cluster.close()
