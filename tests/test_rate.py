"""The rate limiter on a fake clock: pacing, cuts and recovery, in milliseconds."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest

from narrator.synth.rate import AdaptiveRate


class FakeClock:
    """Time passes only when the test says so; sleepers wake when it passes their deadline."""

    def __init__(self, *, auto: bool = False) -> None:
        self.time = 0.0
        self.auto = auto  # a sleep moves the clock itself to its deadline
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        # The deadline is read when the limiter asks, not when the sleep first runs.
        deadline = self.time + seconds
        if self.auto:
            self.advance(seconds)
        return self._until(deadline)

    async def _until(self, deadline: float) -> None:
        while self.time < deadline - 1e-9:  # float sums of advances may fall short
            self._moved.clear()
            await self._moved.wait()
        self.time = max(self.time, deadline)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.time += seconds
        self._moved.set()


async def test_starts_are_spaced_one_interval_apart_never_bunched() -> None:
    clock = FakeClock(auto=True)
    rate = AdaptiveRate(600, clock=clock)  # one start every 0.1 s
    starts = [await rate.acquire() for _ in range(6)]
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


async def test_a_late_start_is_made_up_for_by_at_most_half_an_interval() -> None:
    clock = FakeClock()
    rate = AdaptiveRate(600, clock=clock)
    assert await rate.acquire() == 0.0
    clock.advance(0.13)  # the busy loop came back 30 ms late
    assert await rate.acquire() == pytest.approx(0.13)
    third = asyncio.ensure_future(rate.acquire())
    clock.advance(0.06)  # 0.19: the schedule's 0.2 has not come
    await asyncio.sleep(0)
    assert not third.done()
    clock.advance(0.01)
    assert await third == pytest.approx(0.2)  # back on the schedule
    starts = [0.0, 0.13, 0.2]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.05


async def test_after_an_idle_spell_a_new_schedule_opens() -> None:
    clock = FakeClock(auto=True)
    rate = AdaptiveRate(600, clock=clock)
    await rate.acquire()
    clock.advance(5.0)  # idle: no burst of the starts missed meanwhile
    assert await rate.acquire() == pytest.approx(5.0)
    assert await rate.acquire() == pytest.approx(5.1)


async def test_a_rate_change_keeps_the_pacing_in_place() -> None:
    clock = FakeClock(auto=True)
    rate = AdaptiveRate(600, clock=clock)
    first = await rate.acquire()
    assert await rate.throttled(first)  # 600 -> 420 a minute
    second = await rate.acquire()
    assert second - first == pytest.approx(60 / 420)  # no free start after the change


async def test_a_waiter_rereads_its_start_when_the_rate_changes() -> None:
    clock = FakeClock()
    rate = AdaptiveRate(600, clock=clock)
    first = await rate.acquire()
    waiter = asyncio.ensure_future(rate.acquire())  # due at 0.1
    await asyncio.sleep(0)
    assert await rate.throttled(first)  # cut while it waits: due at 60/420 now
    clock.advance(0.1)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(60 / 420 - 0.1)
    assert await waiter == pytest.approx(60 / 420)


async def test_adaptive_rate_cuts_once_per_burst_and_recovers() -> None:
    clock = FakeClock(auto=True)
    rate = AdaptiveRate(1200, cut=0.5, clock=clock)
    started = await rate.acquire()
    assert await rate.throttled(started)
    assert rate.rpm == 600
    assert not await rate.throttled(started)  # sent before the cut: no second cut
    assert await rate.throttled(clock.now() + 1)  # sent after it: the new rate is too fast too
    assert rate.rpm == 300  # ceiling is now 600
    for _ in range(20):
        await rate.succeeded()
    assert rate.rpm == pytest.approx(0.9 * 600)  # quickly back to just under the ceiling
    for _ in range(1000):
        await rate.succeeded()
    assert rate.rpm == 1200  # probes back up to what the user allowed


async def test_adaptive_rate_can_be_switched_off() -> None:
    rate = AdaptiveRate(600, adaptive=False)
    assert not await rate.throttled(0.0)
    assert rate.rpm == 600
    for _ in range(100):
        await rate.succeeded()
    assert rate.rpm == 600
