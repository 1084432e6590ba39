"""The rate limiter: requests per minute, paced one start at a time, adapting to 429s.

:class:`Rate` and :class:`Slots` are what the pool asks of a limiter and of a cap on
requests in flight: :class:`AdaptiveRate` here paces one process; a shared limiter
(:mod:`narrator.cluster.pacing`) paces every worker of one account together.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ["AdaptiveRate", "Clock", "LoopClock", "Rate", "Slots"]


class Rate(Protocol):
    """A limiter the pool paces its requests by."""

    @property
    def rpm(self) -> float:
        """The rate now, in requests per minute."""
        ...

    async def acquire(self) -> float:
        """Wait for the next start; returns the clock time of the start."""
        ...

    async def throttled(self, started: float) -> bool:
        """A request started at ``started`` (what :meth:`acquire` returned) got a 429;
        True when that cut the rate."""
        ...

    async def succeeded(self) -> None:
        """A request was answered well."""
        ...


class Slots(Protocol):
    """A cap on requests in flight beyond this process's own (several workers' share)."""

    def hold(self) -> AbstractAsyncContextManager[object]:
        """One slot, held for the ``async with`` block (waiting for one first)."""
        ...


class Clock(Protocol):
    """Where the limiter reads the time and waits: the loop's clock, or a test's."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock (the default)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AdaptiveRate:
    """Requests per minute, paced one start at a time, slowing down when the service throttles.

    Starts are spread evenly, never bunched: the upstream service throttles per second,
    so a minute's worth at once would fail. The pacing keeps its place across rate
    changes (the next start is one new interval after the last one), which is why this
    is not aiolimiter: its rate is fixed, and a fresh limiter per change lets a request
    through at once, straight into the service's empty allowance.

    On a 429 from a request started after the last cut, the rate is cut (by ``cut``) and
    the throttled rate becomes the ceiling; then it climbs back quickly to just under the
    ceiling and probes above it slowly, so a run settles near what the service allows.
    Every time read and every wait goes through ``clock`` (the loop's by default), so
    tests can run the pacing on a fake clock.
    """

    def __init__(
        self, rpm: float, *, adaptive: bool = True, cut: float = 0.7, clock: Clock | None = None
    ) -> None:
        self._clock = clock or LoopClock()
        self.max_rpm = self.rpm = float(rpm)
        self.adaptive = adaptive
        self._cut = cut
        self._ceiling = float(rpm)
        self._successes = 0
        self._last_cut = float("-inf")
        self._last_start = float("-inf")
        self._next = float("-inf")  # no request may start before this clock time
        self._lock = asyncio.Lock()  # first come, first served
        self._sleeper: asyncio.Future[None] | None = None  # the waiter's sleep, if any

    @property
    def interval(self) -> float:
        return 60.0 / self.rpm

    def _set(self, rpm: float) -> None:
        self.rpm = min(self.max_rpm, max(1.0, rpm))
        self._next = self._last_start + self.interval
        if self._sleeper is not None:
            self._sleeper.cancel()  # the waiter wakes and re-reads its start time

    async def acquire(self) -> float:
        """Wait for the next start; returns the clock time of the start."""
        async with self._lock:
            while (wait := self._next - self._clock.now()) > 0:
                await self._wait(wait)
            now = self._clock.now()
            # A start the busy loop made a little late is made up for by the next one (never
            # more than half an interval, so no two starts are closer than that); a start
            # after an idle spell opens a new schedule.
            on_schedule = now - self._next <= 0.5 * self.interval
            self._next = (self._next if on_schedule else now) + self.interval
            self._last_start = now
            return now

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the rate changes meanwhile (:meth:`_set` cancels
        the sleep). One task per wait, paced request after paced request: no second task
        for the change, no ``asyncio.wait``."""
        sleeper = self._sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await sleeper
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller was cancelled, not the sleep
        finally:
            self._sleeper = None
            sleeper.cancel()

    async def throttled(self, started: float) -> bool:
        """A request started at ``started`` got a 429. True when the rate was cut."""
        # Requests sent before the last cut were paced at the old rate: they say nothing new.
        if not self.adaptive or started <= self._last_cut:
            return False
        self._ceiling = self.rpm
        self._set(self.rpm * self._cut)
        self._last_cut = self._clock.now()
        self._successes = 0
        return True

    async def succeeded(self) -> None:
        if not self.adaptive or self.rpm >= self.max_rpm:
            return
        self._successes += 1
        if self.rpm < 0.9 * self._ceiling:
            if self._successes >= 4:
                self._set(min(0.9 * self._ceiling, self.rpm + 0.1 * self._ceiling))
                self._successes = 0
        elif self._successes >= 10:
            self._set(self.rpm + 0.02 * self._ceiling)
            self._successes = 0
