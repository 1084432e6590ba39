"""One account's pace, shared in Redis by every worker on every machine (docs/pacing.md).

- **The rate**: one Lua script per take reserves the next start, one interval after the
  last start anyone reserved, by the server's clock (``TIME``): a GCRA with no burst.
- **The adaptive cut**: a 429 cuts the shared rate unless a cut came after its request
  was paced (takes carry the cut's epoch); the ceiling and today's climb back are shared
  too, each worker's successes told with its next take.
- **The slots**: at most ``concurrency`` requests in flight across the account, leases in
  a sorted set scored by expiry, renewed while a request runs; a killed worker's lapse.

Keys are named by :func:`account_of`, a fingerprint, never the API key. Redis away:
every take waits (one log line when it begins, one when Redis is back), never unpaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..errors import ConfigError, InternalFailure
from ..settings import Settings
from ..synth.rate import Clock, LoopClock
from ..util.sanitize import clean_line

__all__ = ["LEASE", "PREFIX", "SharedPacing", "SharedRate", "SharedSlots", "account_of"]

log = logging.getLogger("narrator")

T = TypeVar("T")

PREFIX = "narrator:pace:"
# A slot's lease: how soon a killed worker's slots come back (the account runs below its
# --concurrency that long). Renewed every third of it.
LEASE = 10.0
# The rate's state outlives its last take this long (seconds); then a take starts afresh.
IDLE = 3600
# Starts remembered with the cut they were paced under (more than any requests in flight).
REMEMBERED = 4096
# A wake this late (seconds) is the event loop's ordinary jitter, not a stalled process.
LATE = 0.005
# How long a waiter for a slot blocks before it looks again (seconds).
SLOT_POLL = 1.0

# KEYS[1] the account's rate (a hash). ARGV: this worker's most rpm, its successes since its
# last take, IDLE. Returns the start reserved, the server's time, the rpm, the cut (epoch).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local most = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'last', 'rpm', 'ceiling', 'successes', 'epoch')
local rpm = tonumber(s[2]) or most
local ceiling = tonumber(s[3]) or rpm
local successes = tonumber(s[4]) or 0
local epoch = tonumber(s[5]) or 0
for _ = 1, tonumber(ARGV[2]) do
  if rpm >= most then break end
  successes = successes + 1
  if rpm < 0.9 * ceiling then
    if successes >= 4 then
      rpm = math.min(0.9 * ceiling, rpm + 0.1 * ceiling)
      successes = 0
    end
  elseif successes >= 10 then
    rpm = rpm + 0.02 * ceiling
    successes = 0
  end
  rpm = math.min(most, rpm)
end
local pace = math.min(rpm, most)
local start = now
if s[1] then start = math.max(now, tonumber(s[1]) + 60 / pace) end
redis.call('HSET', KEYS[1], 'last', string.format('%.6f', start),
  'rpm', string.format('%.6f', rpm), 'ceiling', string.format('%.6f', ceiling),
  'successes', successes, 'epoch', epoch)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {string.format('%.6f', start), string.format('%.6f', now),
  string.format('%.6f', pace), tostring(epoch)}
"""

# KEYS[1] the rate. ARGV: the cut the throttled request was paced under, the cut (0.7),
# this worker's most rpm, IDLE. Returns 1 if it cut (else 0), the rpm now, the cut now.
_CUT = """
local s = redis.call('HMGET', KEYS[1], 'rpm', 'epoch')
local most = tonumber(ARGV[3])
local rpm = math.min(tonumber(s[1]) or most, most)
local epoch = tonumber(s[2]) or 0
if tonumber(ARGV[1]) < epoch then
  return {'0', string.format('%.6f', rpm), tostring(epoch)}
end
local ceiling = rpm
rpm = math.max(1, rpm * tonumber(ARGV[2]))
epoch = epoch + 1
redis.call('HSET', KEYS[1], 'rpm', string.format('%.6f', rpm),
  'ceiling', string.format('%.6f', ceiling), 'successes', 0, 'epoch', epoch)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'1', string.format('%.6f', rpm), tostring(epoch)}
"""

# KEYS[1] the leases (a sorted set: slot -> expiry). ARGV: the cap, the lease, the slot.
# Returns 1, 0 when the slot is taken, else 0 and the seconds until the first lease lapses.
_SLOT_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], string.format('%.6f', now + lease), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
  return {'1', '0'}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {'0', string.format('%.6f', tonumber(first[2]) - now)}
"""

# KEYS[1] the leases. ARGV: the lease, the slot. Put back if lost (a Redis restart).
_SLOT_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], string.format('%.6f', now + lease), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS[1] the leases, KEYS[2] the list waiters block on. ARGV: the slot, the cap, the lease.
_SLOT_FREE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[3]) * 1000))
end
return 1
"""


def account_of(settings: Settings) -> str:
    """The fingerprint that names one account's keys: the provider, its endpoint, the
    model (a rate limit is per model) and the API key, hashed; never the key itself."""
    parts = (settings.provider, settings.base_url, settings.model, settings.api_key or "")
    text = "\0".join(("narrator-pacing-1", *parts))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _floats(reply: Any) -> list[float]:
    return [float(item) for item in reply]


class SharedPacing:
    """One account's shared pace in Redis: :attr:`rate` and :attr:`slots` for the pool.

    ``client`` is a :mod:`redis.asyncio` client (:meth:`connect` makes one from a URL);
    ``rpm``, ``concurrency`` and ``adaptive`` are this worker's settings (the account's
    pace is the lowest its workers allow); ``lease`` is how long a slot outlives a killed
    worker; ``prefix`` starts every key (a test's own); ``clock`` is where time is read
    and waited. ``where`` names the server in log lines (host and port, no password).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        account: str,
        rpm: float,
        concurrency: int,
        adaptive: bool = True,
        cut: float = 0.7,
        lease: float = LEASE,
        prefix: str = PREFIX,
        clock: Clock | None = None,
        where: str = "",
    ) -> None:
        self.client = client
        self.where = where or _where(client)
        self._clock = clock or LoopClock()
        self._down = False  # Redis is unreachable: said once, until it is back
        base = f"{prefix}{{{account}}}"  # one hash slot per account, should Redis be a cluster
        self.keys = (f"{base}:rate", f"{base}:slots", f"{base}:freed")
        self.rate = SharedRate(self, rpm=rpm, adaptive=adaptive, cut=cut, clock=self._clock)
        self.slots = SharedSlots(self, cap=concurrency, lease=lease, clock=self._clock)

    @classmethod
    def connect(cls, url: str, **options: Any) -> SharedPacing:
        """The shared pace at the Redis server ``url`` (``redis://``, ``rediss://`` or
        ``unix://``); no connection is made until the first take."""
        try:
            client = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=2.0,
                socket_timeout=5.0,  # longer than a waiter's block on a slot (SLOT_POLL)
                retry=Retry(NoBackoff(), 1),  # a connection dropped while idle: once more
            )
        except ValueError as exc:  # its text may quote the URL, password and all
            raise ConfigError(
                "pacing_url is not a Redis URL that can be used (redis://HOST:PORT/DB)",
                setting="pacing_url",
            ) from exc
        return cls(client, **options)

    @classmethod
    def for_settings(cls, settings: Settings, **options: Any) -> SharedPacing:
        """The shared pace of the account ``settings`` use, at ``settings.pacing_url``."""
        if settings.pacing_url is None:
            raise ValueError("settings.pacing_url is not set")
        return cls.connect(
            settings.pacing_url,
            account=account_of(settings),
            rpm=settings.rpm,
            concurrency=settings.concurrency,
            adaptive=settings.adaptive_rate,
            **options,
        )

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """``command``'s answer, waiting for Redis as long as it is unreachable."""
        pause = 0.05
        while True:
            try:
                answer = await command()
            except rx.AuthenticationError as exc:
                raise InternalFailure(
                    f"Redis at {self.where} refused the password: {clean_line(str(exc))}"
                ) from exc
            except (rx.ConnectionError, rx.TimeoutError):
                if not self._down:
                    self._down = True
                    log.warning("waiting for Redis at %s", self.where)
                await self._clock.sleep(pause)
                pause = min(1.0, 2 * pause)
                continue
            except rx.RedisError as exc:
                raise InternalFailure(
                    f"the shared pace at Redis {self.where} failed: {clean_line(str(exc))}"
                ) from exc
            if self._down:
                self._down = False
                log.warning("Redis at %s is back", self.where)
            return answer

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> SharedPacing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _where(client: aioredis.Redis) -> str:
    """``host:port`` (or the socket's path) of ``client``'s server: never its password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return clean_line(str(kwargs["path"]))
    return clean_line(f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}")


class SharedRate:
    """The account's rate, shared in Redis: :class:`~narrator.synth.rate.Rate` for the pool.

    ``rpm`` is the rate as this worker last saw it; ``reserved`` the server time of the
    start its last :meth:`acquire` reserved.
    """

    def __init__(
        self, pacing: SharedPacing, *, rpm: float, adaptive: bool, cut: float, clock: Clock
    ) -> None:
        self._pacing = pacing
        self._take = pacing.client.register_script(_TAKE)
        self._cut_script = pacing.client.register_script(_CUT)
        self.max_rpm = self.rpm = float(rpm)
        self.adaptive = adaptive
        self._cut = cut
        self._clock = clock
        self._lock = asyncio.Lock()  # one reservation at a time per process
        self._wins = 0  # successes not yet told to Redis (they go with the next take)
        self._epoch = 0  # the latest cut this worker knows of
        self._paced_under: OrderedDict[float, int] = OrderedDict()  # start: its cut
        self.reserved = -math.inf

    @property
    def interval(self) -> float:
        return 60.0 / self.rpm

    async def acquire(self) -> float:
        """Wait for the next start of the account; returns the clock time of the start."""
        if math.isinf(self.max_rpm):  # no limit: nothing to share
            return self._clock.now()
        key = self._pacing.keys[0]
        async with self._lock:
            retaken = False
            while True:
                wins, most = self._wins, repr(self.max_rpm)
                take = functools.partial(self._take, keys=[key], args=[most, wins, IDLE])
                reply = await self._pacing.call(take)
                self._wins -= wins  # told, with this take (more may have come meanwhile)
                start, now, self.rpm, epoch = _floats(reply)
                self._epoch = max(self._epoch, int(epoch))
                due = self._clock.now() + max(0.0, start - now)
                if start > now:
                    await self._clock.sleep(start - now)
                started = self._clock.now()
                # Woken far behind its start (a stalled process), it would go just before
                # the next worker's: take a fresh start instead (once), so no two starts
                # come closer than half an interval (today's limiter's rule).
                if retaken or started - due <= max(LATE, 0.5 * 60 / self.rpm):
                    break
                retaken = True
            self.reserved = start
            self._paced_under[started] = int(epoch)
            while len(self._paced_under) > REMEMBERED:
                self._paced_under.popitem(last=False)
            return started

    async def throttled(self, started: float) -> bool:
        """A request started at ``started`` got a 429: the account's rate is cut, unless
        a cut came after the request was paced (it says nothing new). True when it cut."""
        if not self.adaptive or math.isinf(self.max_rpm):
            return False
        epoch = self._paced_under.pop(started, self._epoch)
        if epoch < self._epoch:
            return False  # known here already: no trip to Redis
        key = self._pacing.keys[0]
        args: list[str | int] = [epoch, repr(self._cut), repr(self.max_rpm), IDLE]
        reply = await self._pacing.call(lambda: self._cut_script(keys=[key], args=args))
        cut, self.rpm, now = _floats(reply)
        self._epoch = max(self._epoch, int(now))
        return bool(cut)

    async def succeeded(self) -> None:
        if self.adaptive and not math.isinf(self.max_rpm):
            self._wins += 1


class SharedSlots:
    """At most ``cap`` requests in flight across the account's workers: leases in Redis
    (:class:`~narrator.synth.rate.Slots` for the pool)."""

    def __init__(self, pacing: SharedPacing, *, cap: int, lease: float, clock: Clock) -> None:
        self._pacing = pacing
        self._take = pacing.client.register_script(_SLOT_TAKE)
        self._renew_script = pacing.client.register_script(_SLOT_RENEW)
        self._free = pacing.client.register_script(_SLOT_FREE)
        self.cap = cap
        self.lease = lease
        self._clock = clock
        self._lock = asyncio.Lock()  # one waiter per process asks Redis; the rest queue here

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[str]:
        """One slot for the block, renewed while it runs, given back after."""
        slot = await self.take()
        renewing = asyncio.create_task(self._renew(slot), name="narrator-slot-lease")
        try:
            yield slot
        finally:
            renewing.cancel()  # and ended before the slot goes: no renewal after it
            await asyncio.gather(renewing, return_exceptions=True)
            await self.release(slot)

    async def take(self) -> str:
        """Wait for a slot; returns its name (for :meth:`release`)."""
        slot = uuid.uuid4().hex
        leases, freed = self._pacing.keys[1:]
        take = functools.partial(self._take, keys=[leases], args=[self.cap, repr(self.lease), slot])
        async with self._lock:
            while True:
                got, wait = _floats(await self._pacing.call(take))
                if got:
                    return slot
                # Woken by a slot freed, or when the first lease lapses (a killed worker's).
                block = min(max(wait, 0.01), SLOT_POLL)
                await self._pacing.call(
                    functools.partial(self._pacing.client.blpop, [freed], block)
                )

    async def release(self, slot: str) -> None:
        """Give ``slot`` back; if Redis cannot be reached, its lease lapses on its own."""
        leases, freed = self._pacing.keys[1:]
        with contextlib.suppress(rx.RedisError):
            await self._free(keys=[leases, freed], args=[slot, self.cap, repr(self.lease)])

    async def _renew(self, slot: str) -> None:
        leases = self._pacing.keys[1]
        while True:
            await self._clock.sleep(self.lease / 3)
            with contextlib.suppress(rx.RedisError):  # the next renewal tries again
                await self._renew_script(keys=[leases], args=[repr(self.lease), slot])
