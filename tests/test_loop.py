"""Nothing blocks the event loop: requests in flight complete while the store waits.

Another process holds the SQLite write lock (a real second process, a real database
file). The pool's store writes must wait for it; the requests already sent must not.
The provider's own record of completed requests is the proof: a request finishes, the
loop keeps ticking and a second request finishes, all while the lock is still held and
before any of their audio could be written down. Before the store ran on its own thread,
the first write froze the loop until the lock was let go.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from narrator.store import Store, segment_key
from narrator.store.thread import StoreThread
from narrator.synth.pool import Job, Pool, PoolConfig
from narrator.synth.providers import Audio
from narrator.util.wav import tone_pcm, wav_bytes

WAV = wav_bytes(tone_pcm(0.05, 24000), 24000)

# Holds the write lock until told to let go (a line on stdin), or for 20 s at most.
HOLDER = """
import select, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
select.select([sys.stdin], [], [], 20)
db.rollback()
print("released", flush=True)
"""


class GatedProvider:
    """Answers each text when the test opens its gate; records what completed, in order."""

    name = "fake"
    model = "fake-1"
    identity = "fake"
    max_chars = 600

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.completed: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, text: str) -> asyncio.Event:
        return self.gates.setdefault(text, asyncio.Event())

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        self.sent.append(text)
        await self.gate(text).wait()
        self.completed.append(text)
        return Audio(data=WAV)

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise AssertionError("inline audio only")

    async def aclose(self) -> None:
        pass


def job(text: str) -> Job:
    return Job(segment_key(provider="fake", voice="Cherry", text=text), text, len(text))


async def until(condition: Callable[[], bool], what: str, *, limit: float = 10.0) -> None:
    """Wait (on the loop) until ``condition`` holds; a bound, not a timing assertion."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 (conditions on plain counters, polled)
            await asyncio.sleep(0.005)
    assert condition(), what


async def test_requests_in_flight_complete_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "cache")
    provider = GatedProvider()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    beat = asyncio.create_task(heartbeat())
    holder = None
    try:
        async with Pool(provider, store, PoolConfig("Cherry", 2, 60_000)) as pool:  # type: ignore[arg-type]
            provider.gate("first").set()  # the probe: requests go one at a time until then
            await pool.submit(job("first"))
            a, b = pool.submit(job("a")), pool.submit(job("b"))
            await until(lambda: provider.sent[-2:] in (["a", "b"], ["b", "a"]), "both sent")

            holder = await asyncio.create_subprocess_exec(
                sys.executable, "-c", HOLDER, str(tmp_path / "cache" / "narrator.sqlite3"),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert holder.stdout is not None and holder.stdin is not None
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"

            provider.gate("a").set()  # a's answer arrives; storing it must wait for the lock
            await until(lambda: provider.completed == ["first", "a"], "a completed")
            seen = ticks
            await until(lambda: ticks >= seen + 50, "the loop keeps running")
            provider.gate("b").set()  # b, in flight all along, completes meanwhile
            await until(lambda: provider.completed == ["first", "a", "b"], "b completed")

            # All of that happened while the other process still held the lock, and
            # neither chunk could be written down yet: the store really was waiting.
            assert holder.returncode is None
            assert not a.done() and not b.done()

            holder.stdin.write(b"go\n")
            await holder.stdin.drain()
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"released\n"
            outcomes = await asyncio.wait_for(asyncio.gather(a, b), 60)
        assert [o.cached for o in outcomes] == [False, False]
        assert all(store.lookup(o.segment.key) == o.segment for o in outcomes)
    finally:
        beat.cancel()
        if holder is not None:
            if holder.returncode is None:
                holder.kill()
            await holder.wait()
        store.close()


async def test_store_calls_run_one_at_a_time_in_the_order_made() -> None:
    thread = StoreThread()
    order: list[int] = []

    def call(n: int) -> int:
        order.append(n)
        return n * n

    def fails() -> None:
        order.append(-1)
        raise ValueError("posted and failed")

    try:
        results = []
        for n in range(0, 60, 3):  # awaited, posted, and a posted one that fails
            results.append(asyncio.ensure_future(thread.run(call, n)))
            await asyncio.sleep(0)  # the task makes its call
            thread.post(call, n + 1)
            thread.post(fails)
        assert await asyncio.gather(*results) == [n * n for n in range(0, 60, 3)]
        with pytest.raises(ZeroDivisionError):  # an error reaches the awaiting caller
            await thread.run(lambda: 1 // 0)
    finally:
        await thread.finish()  # after every call made before, posted ones too
    expected = [m for n in range(0, 60, 3) for m in (n, n + 1, -1)]
    assert order == expected


async def test_a_cancelled_callers_call_runs_to_its_end_and_the_next_waits() -> None:
    thread = StoreThread()
    release = threading.Event()
    order: list[str] = []

    def slow() -> None:
        release.wait(20)
        order.append("slow")

    try:
        waiter = asyncio.ensure_future(thread.run(slow))
        await asyncio.sleep(0)
        waiter.cancel()
        nxt = asyncio.ensure_future(thread.run(order.append, "next"))
        await asyncio.sleep(0.01)
        assert not nxt.done()  # the slow call, cancelled, still holds the thread
        release.set()
        await asyncio.wait_for(nxt, 20)
    finally:
        release.set()
        await thread.finish()
    assert order == ["slow", "next"]
    assert waiter.cancelled()
