"""The pace shared by several workers of one account, in a real Redis (cluster/pacing.py).

Every test has a key prefix of its own on the shared server; the test that restarts
Redis starts a private one. Times asserted on are the Redis server's (``TIME``), never
the wall clock's: the properties are the order and the spacing of starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from narrator.cluster.pacing import PREFIX, SharedPacing, account_of
from narrator.errors import ConfigError, InternalFailure, RateLimited
from narrator.run.pipeline import narrate
from narrator.settings import Settings
from narrator.store import Store
from narrator.synth.pool import Pool, PoolConfig
from narrator.synth.rate import AdaptiveRate, LoopClock
from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY
from .faults import PrivateRedis
from .services import unique
from .test_pool import FakeProvider, job
from .test_rate import FakeClock

KEY = "sk-test-Zq8v41-never-in-redis"


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """This test's own key prefix; its keys are deleted afterwards."""
    name = f"{unique('narrator-test:')}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{name}*"):
        client.delete(key)
    client.close()


@contextlib.asynccontextmanager
async def pacing(url: str, prefix: str, **options: object) -> AsyncIterator[SharedPacing]:
    """A worker's shared pace: a client of its own, on the account ``acct``."""
    options = {"account": "acct", "rpm": 60_000, "concurrency": 2, **options}
    async with SharedPacing.connect(url, prefix=prefix, **options) as shared:  # type: ignore[arg-type]
        yield shared


async def server_time(shared: SharedPacing) -> float:
    seconds, micros = await shared.client.time()
    return seconds + micros / 1e6


def test_starts_are_evenly_spaced_across_three_workers(redis_url: str, prefix: str) -> None:
    rpm, takes = 1200, 8  # one start every 50 ms; 24 starts in about 1.2 s
    found: list[tuple[float, float]] = []  # (start reserved, server time once it began)
    lock = threading.Lock()

    async def worker() -> None:
        async with pacing(redis_url, prefix, rpm=rpm) as shared:
            for _ in range(takes):
                await shared.rate.acquire()
                began = await server_time(shared)
                with lock:
                    found.append((shared.rate.reserved, began))

    # Three workers, each with its own event loop and its own connection to Redis.
    threads = [threading.Thread(target=asyncio.run, args=(worker(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(found) == 3 * takes
    reserved = sorted(start for start, _ in found)
    gaps = [b - a for a, b in itertools.pairwise(reserved)]
    assert min(gaps) >= 60 / rpm * (1 - 1e-3), gaps  # evenly spaced, never two at once
    assert all(began >= start - 1e-6 for start, began in found)  # none went early


class LateClock(LoopClock):
    """The loop's clock, whose first sleep overruns by ``late`` seconds (a stalled process)."""

    def __init__(self, late: float) -> None:
        self.late = late

    async def sleep(self, seconds: float) -> None:
        late, self.late = self.late, 0.0
        await super().sleep(seconds + late)


async def test_a_worker_woken_late_takes_a_fresh_start(redis_url: str, prefix: str) -> None:
    interval = 60 / 1200
    async with (
        pacing(redis_url, prefix, rpm=1200) as other,
        pacing(redis_url, prefix, rpm=1200, clock=LateClock(3 * interval)) as stalled,
    ):
        await other.rate.acquire()  # the next start is one interval away: stalled waits
        await stalled.rate.acquire()
        began = await server_time(stalled)
    # It did not go on the start it overslept, just before whoever has the next one.
    assert stalled.rate.reserved >= began - interval


async def test_a_429_in_one_worker_slows_every_worker_once(redis_url: str, prefix: str) -> None:
    async with pacing(redis_url, prefix) as a, pacing(redis_url, prefix) as b:
        first_a = await a.rate.acquire()
        first_b = await b.rate.acquire()  # paced before the cut
        assert await a.rate.throttled(first_a)
        assert a.rate.rpm == pytest.approx(42_000)
        # b's request was paced before a's cut: its 429 says nothing new.
        assert not await b.rate.throttled(first_b)
        await b.rate.acquire()
        assert b.rate.rpm == pytest.approx(42_000)
        assert b.rate.reserved - a.rate.reserved >= 60 / 42_000 * (1 - 1e-3)
        # A 429 paced after the cut cuts again, whoever sees it.
        assert await b.rate.throttled(await b.rate.acquire())
        await a.rate.acquire()
        assert a.rate.rpm == pytest.approx(42_000 * 0.7)


async def test_the_climb_back_is_shared_and_shaped_like_one_process(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock(auto=True)
    alone = AdaptiveRate(60_000, cut=0.5, clock=clock)  # today's limiter, for the shape
    assert await alone.throttled(await alone.acquire())
    async with pacing(redis_url, prefix, cut=0.5) as a, pacing(redis_url, prefix, cut=0.5) as b:
        assert await a.rate.throttled(await a.rate.acquire())
        seen = []
        # Successes seen by either worker, told with its next take, climb for both.
        for worker, wins in [(a, 3), (b, 5), (a, 8), (b, 9), (a, 41), (b, 1)]:
            for _ in range(wins):
                await worker.rate.succeeded()
                await alone.succeeded()
            await worker.rate.acquire()
            seen.append((worker.rate.rpm, alone.rpm))
        other = b if worker is a else a
        await other.rate.acquire()
        seen.append((other.rate.rpm, alone.rpm))
    assert [ours for ours, _ in seen] == pytest.approx([today for _, today in seen])
    assert seen[0][0] == pytest.approx(30_000) and seen[1][0] > seen[0][0]  # it climbs...
    assert seen[-1] == pytest.approx((60_000, 60_000))  # ...back to the account's limit


async def test_slots_cap_requests_across_workers_and_come_back_from_a_dead_one(
    redis_url: str, prefix: str
) -> None:
    lease = 0.3
    async with (
        pacing(redis_url, prefix, lease=lease) as dead,
        pacing(redis_url, prefix, lease=lease) as live,
    ):
        # A worker takes both slots and dies: nothing gives them back or renews them.
        taken = [await dead.slots.take() for _ in range(2)]
        leases = dead.keys[1]
        lapse = max(await live.client.zmscore(leases, taken))
        await dead.client.aclose()
        async with live.slots.hold():
            got = await server_time(live)
            held = await live.client.zcard(leases)
        assert got >= lapse - 1e-6  # only once a dead worker's lease had lapsed
        assert held == 1  # the dead slots were swept, not added to


async def test_a_held_slot_outlives_its_lease_and_others_wait_for_it(
    redis_url: str, prefix: str
) -> None:
    async with (
        pacing(redis_url, prefix, lease=0.6, concurrency=1) as a,
        pacing(redis_url, prefix, lease=0.6, concurrency=1) as b,
    ):
        async with a.slots.hold():
            waiter = asyncio.create_task(b.slots.take())
            await asyncio.sleep(1.0)  # well past the lease: only renewals keep the slot
            assert not waiter.done()
        await asyncio.wait_for(waiter, 10)  # woken by the slot freed
        assert await b.client.zcard(b.keys[1]) == 1


async def test_pools_share_the_cap_and_the_cut(tmp_path: Path, redis_url: str, prefix: str) -> None:
    provider = FakeProvider(latency=0.05, failures={"a0": [RateLimited("429")]})

    async def noop(seconds: float) -> None:
        pass

    config = PoolConfig(voice="Cherry", concurrency=4, rpm=60_000, retries=4, backoff_base=0.0)
    async with pacing(redis_url, prefix) as one, pacing(redis_url, prefix) as two:
        pools = [
            Pool(provider, Store(tmp_path / name), config, sleep=noop, rate=s.rate, slots=s.slots)
            for name, s in (("a", one), ("b", two))
        ]
        async with pools[0] as a, pools[1] as b:
            await asyncio.gather(
                *(a.submit(job(f"a{i}")) for i in range(6)),
                *(b.submit(job(f"b{i}")) for i in range(6)),
            )
    assert provider.max_in_flight == 2  # the account's two, not four per pool
    assert a.stats.throttled == 1 and b.stats.throttled == 0
    assert b.rate.rpm < 60_000  # a's 429 slowed b


async def test_the_account_is_named_by_a_fingerprint_never_the_key(
    redis_url: str, prefix: str
) -> None:
    settings = Settings(api_key=KEY, pacing_url=redis_url)
    assert account_of(settings) != account_of(Settings(api_key=KEY + "x"))
    assert account_of(settings) == account_of(Settings(api_key=KEY, voice="Ethan"))
    async with SharedPacing.for_settings(settings, prefix=prefix) as shared:
        await shared.rate.throttled(await shared.rate.acquire())
        async with shared.slots.hold():
            stored = []
            async for key in shared.client.scan_iter(match=f"{prefix}*"):
                kind = (await shared.client.type(key)).decode()
                value = {
                    "hash": shared.client.hgetall,
                    "zset": lambda k: shared.client.zrange(k, 0, -1, withscores=True),
                    "list": lambda k: shared.client.lrange(k, 0, -1),
                }[kind](key)
                stored.append(repr((key, await value)))
    assert len(stored) == 2  # the rate and the slots
    assert account_of(settings) in stored[0]
    assert not [s for s in stored if KEY in s or KEY[8:20] in s]


def test_a_pacing_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match="pacing_url") as caught:
        Settings(api_key=KEY, pacing_url="http://user:pw-hidden@127.0.0.1:6379")
    assert "pw-hidden" not in str(caught.value)
    with pytest.raises(ConfigError, match="pacing_url") as caught:
        SharedPacing.connect("redis://:pw-hidden@127.0.0.1:notaport/0", account="a", rpm=1,
                             concurrency=1)  # fmt: skip
    assert "pw-hidden" not in str(caught.value)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    # No disk: a restart forgets the pace, as a server with no persistence does.
    server = PrivateRedis(tmp_path, password=unique("pw-"), persist=False)
    server.start()
    yield server
    server.stop()


async def until(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_take_waits_for_redis_to_come_back_then_goes_on(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="narrator")
    where = f"127.0.0.1:{private_redis.port}"
    async with pacing(private_redis.url, "p:", lease=0.3) as shared:
        await shared.rate.acquire()
        async with shared.slots.hold() as slot:
            private_redis.stop()  # its state goes with it: nothing is saved
            take = asyncio.create_task(shared.rate.acquire())
            await until(lambda: f"waiting for Redis at {where}" in caplog.text, "no wait said")
            await asyncio.sleep(0.3)  # several tries while it is down
            assert not take.done()  # never a start unpaced
            private_redis.start()
            await asyncio.wait_for(take, 10)
            # The lease of the request in flight is renewed into the new server.
            client = aioredis.Redis.from_url(private_redis.url)
            try:
                leases = shared.keys[1]
                for _ in range(100):
                    if await client.zscore(leases, slot) is not None:
                        break
                    await asyncio.sleep(0.02)
                assert await client.zscore(leases, slot) is not None
            finally:
                await client.aclose()
    assert caplog.text.count("waiting for Redis") == 1  # once per outage
    assert f"Redis at {where} is back" in caplog.text
    assert private_redis.password not in caplog.text


async def test_narrate_with_a_pacing_url_paces_in_redis(
    tmp_path: Path, redis_url: str, emulator: RunningEmulator
) -> None:
    settings = Settings(
        api_key=TEST_KEY, base_url=emulator.url, cache_dir=tmp_path / "cache", rpm=6000,
        pacing_url=redis_url, qa="off",
    )  # fmt: skip
    base = f"{PREFIX}{{{account_of(settings)}}}"
    rate = f"{base}:rate"
    client = aioredis.Redis.from_url(redis_url)
    try:
        report = await narrate("One sentence. And another one.", tmp_path / "a.wav", settings)
        assert report.requests == emulator.stats.requests >= 1
        paced = await client.hgetall(rate)  # the run took its starts from the account's pace
        assert float(paced[b"rpm"]) == 6000 and float(paced[b"last"]) > 0
    finally:
        await client.delete(rate, f"{base}:slots", f"{base}:freed")
        await client.aclose()


@pytest.mark.parametrize("password", ["", "wrong-pw-7a1"])
async def test_a_refused_password_stops_the_run_in_one_line(
    private_redis: PrivateRedis, password: str
) -> None:
    url = private_redis.url.replace(private_redis.password, password)
    async with pacing(url, "p:") as shared:
        with pytest.raises(InternalFailure, match=f"Redis at 127.0.0.1:{private_redis.port}") as e:
            await shared.rate.acquire()
    assert "\n" not in str(e.value) and private_redis.password not in str(e.value)
    assert not password or password not in str(e.value)
