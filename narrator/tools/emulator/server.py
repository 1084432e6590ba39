"""The emulator's core: the checks every dialect shares, the app, and running it.

Every time read goes through one clock (``loop.time()`` unless one is injected), so
tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import re
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from ...synth.espeakng import get_engine
from .audio import espeak_wav, speech_wav, spoil, tone_wav
from .config import SHAPES, EmulatorConfig, EmulatorStats, billed_key
from .dialect import Answer, Reject
from .dialects import DIALECTS
from .links import Links

__all__ = [
    "STATS",
    "Clock",
    "RunningEmulator",
    "create_app",
    "serve",
    "start_emulator",
]


_SERVER_ERRORS = (500, 502, 503, 504)
# The documented format of X-Client-Request-Id; other values are not echoed.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BEARER = re.compile(r"Bearer\s+(\S+)\s*", re.IGNORECASE)
_CACHE_ENTRIES = 128  # synthesized clips kept, so retries and repeats cost nothing

Clock = Callable[[], float]

STATS = web.AppKey("narrator_emulator_stats", EmulatorStats)


class _TokenBucket:
    """Allows ``rpm`` requests a minute, at most ``max(1, rpm/60)`` at once."""

    def __init__(self, rpm: float) -> None:
        self.rate = rpm / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.last: float | None = None

    def take(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Emulator:
    """The state behind one app: config, counters, clock, limiter, caches."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None) -> None:
        self.config = config
        self.dialect = DIALECTS[config.api]
        self.stats = EmulatorStats()
        self._clock = clock
        self._epoch: float | None = None  # unix time minus clock time
        self._rng = random.Random(config.seed)
        self._bucket = _TokenBucket(config.rpm) if config.rpm is not None else None
        self.links = Links(self)
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._successes = 0

    def now(self) -> float:
        if self._clock is None:
            # Resolved on first use: the app may be built before the loop runs.
            self._clock = asyncio.get_running_loop().time
        if self._epoch is None:
            self._epoch = time.time() - self._clock()
        return self._clock()

    def unix(self, now: float) -> float:
        """Clock time ``now`` as unix time, for the links' Expires parameter."""
        return (self._epoch or 0.0) + now

    def chance(self, rate: float) -> bool:
        # No draw when the knob is off, so one knob's seed sequence does not depend
        # on whether the others are set.
        return rate > 0.0 and self._rng.random() < rate

    # POST to the dialect's path

    async def tts(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        now = self.now()
        inference_id = str(uuid.uuid4())
        headers = {"x-inference-id": inference_id}
        client_id = request.headers.get("X-Client-Request-Id")
        stats.arrived(now, client_id)
        if client_id is not None and _CLIENT_ID.fullmatch(client_id):
            headers["X-Client-Request-Id"] = client_id
        self.links.purge(now)
        try:
            response = await self._tts(request, headers)
        except Reject as exc:
            status, code = self.dialect.refusals[exc.kind]
            status = status or exc.status
            if status == 429 and self.config.retry_after is not None:
                headers["Retry-After"] = f"{self.config.retry_after:g}"
            response = self.dialect.error(
                status, code, exc.message, request.path, inference_id, headers
            )
        if response is None:
            stats.dropped += 1
            request.protocol.force_close()
            # Never sent: the transport is gone, and aiohttp treats that as a client
            # disconnection, quietly.
            return web.Response(status=500)
        stats.statuses[response.status] = stats.statuses.get(response.status, 0) + 1
        if response.status < 300:
            stats.last_success = self.now()
        return response

    async def _tts(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        """The response, or None to drop the connection; refusals raise :class:`Reject`."""
        config, stats = self.config, self.stats
        self.authorize(request.headers.get("Authorization"))
        if self._bucket is not None and not self._bucket.take(self.now()):
            raise Reject(429, f"Too many requests: the limit is {config.rpm:g} per minute", "rate")
        if config.max_concurrency is not None and stats.in_flight >= config.max_concurrency:
            raise Reject(
                429, f"Too many concurrent requests: the limit is {config.max_concurrency}", "busy"
            )
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            voice, text, billing = self.dialect.validate(
                await request.read(), config.max_characters
            )
            if config.credits is not None and stats.billed_characters >= config.credits:
                raise Reject(
                    403, "You are out of credits: top up your balance to continue", "credits"
                )
            delay = config.latency + config.latency_per_char * billing
            if delay:
                await asyncio.sleep(delay)
            if self.chance(config.fail_rate):
                status = self._rng.choice(_SERVER_ERRORS)
                raise Reject(status, f"Upstream failure (emulated {status})", "server")
            if self.chance(config.drop_rate):
                return None
            wav = await self._audio(voice, text)
        finally:
            stats.in_flight -= 1
        key = billed_key(voice, text)
        stats.bill(key, billing, voice)
        if self.chance(config.bad_audio_rate):
            kind = self._rng.choice(config.bad_audio_kinds)
            wav = spoil(wav, kind, self._rng)
            stats.bill_bad(key, kind)
        return self.dialect.success(self._answer(request, wav, billing, headers))

    def authorize(self, header: str | None) -> None:
        match = _BEARER.fullmatch(header or "")
        expected = self.config.api_key
        if match is None:
            if expected is None and self.dialect.keyless:
                return  # a local OpenAI-compatible server wants no key
            raise Reject(
                401, "Missing API key: send the header 'Authorization: Bearer <key>'", "auth"
            )
        if expected is not None and not hmac.compare_digest(
            match.group(1).encode(), expected.encode()
        ):
            raise Reject(401, "Invalid API key", "auth")

    def _answer(
        self, request: web.Request, wav: bytes, billing: int, headers: dict[str, str]
    ) -> Answer:
        shape, status = self.config.shape, 201
        if shape == "mixed":
            # Every (shape, status) pair in turn: 3 shapes x 2 codes, coprime, so six
            # successes cover all six combinations.
            n = self._successes
            shape, status = SHAPES[n % 3], (201, 200)[n % 2]
        self._successes += 1
        return Answer(request, wav, billing, shape, status, headers, self.links)

    # Synthesis

    async def _audio(self, voice: str, text: str) -> bytes:
        key = (voice, text)
        wav = self._cache.get(key)
        if wav is not None:
            self._cache.move_to_end(key)
            return wav
        voice = self.dialect.engine_voices.get(voice, voice)
        if self.config.engine == "espeak":
            # eSpeak takes ~0.1-1 s for 600 characters; keep the loop serving meanwhile.
            wav = await asyncio.to_thread(espeak_wav, voice, text)
        elif self.config.engine == "speech":
            # Cheap, but the first clip of a voice reads its pool (~0.1 s).
            wav = await asyncio.to_thread(speech_wav, voice, text)
        else:
            wav = tone_wav(voice, text)
        self._cache[key] = wav
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return wav


_STATE = web.AppKey("narrator_emulator_state", _Emulator)


def create_app(config: EmulatorConfig, *, clock: Clock | None = None) -> web.Application:
    """The emulator as an aiohttp application; its counters are at ``app[STATS]``.

    ``clock`` returns seconds and drives the rate limit, link expiry and
    :attr:`EmulatorStats.starts`; it defaults to the running loop's ``time()``.
    """
    emulator = _Emulator(config, clock)
    app = web.Application()
    app[_STATE] = emulator
    app[STATS] = emulator.stats

    async def stats(request: web.Request) -> web.Response:
        # The counters show the texts' hashes and the request ids: they need the key, as
        # the API itself does.
        try:
            emulator.authorize(request.headers.get("Authorization"))
        except Reject:
            return web.json_response({"message": "the stats need the API key"}, status=401)
        return web.json_response(emulator.stats.to_json())

    async def warm_up(_app: web.Application) -> None:
        # Load eSpeak NG before the first request, so a broken install fails at once.
        await asyncio.to_thread(get_engine)

    app.router.add_post(emulator.dialect.path, emulator.tts)
    app.router.add_get("/audio/{name}", emulator.links.download)
    app.router.add_get("/_emulator/stats", stats)
    if config.engine in ("espeak", "speech"):
        app.on_startup.append(warm_up)
    return app


class RunningEmulator:
    """An emulator listening on a TCP port; an async context manager that stops it.

    ``url`` is the base URL (``http://127.0.0.1:PORT``): post to ``url + "/v1/tts"``.
    """

    url: str
    stats: EmulatorStats
    config: EmulatorConfig

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.app = create_app(self.config, clock=clock)
        self.stats = self.app[STATS]
        self.url = ""
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; port 0 picks a free port, which then shows in :attr:`url`."""
        if self._runner is not None:
            return
        # A short shutdown grace: handlers sleeping on ``latency`` need not be awaited.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> RunningEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def start_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
) -> RunningEmulator:
    """Start an emulator and return it, listening; ``async with`` it to stop it."""
    emulator = RunningEmulator(config, host=host, port=port, clock=clock)
    await emulator.start()
    return emulator


def serve(
    config: EmulatorConfig,
    *,
    host: str,
    port: int,
    ready: Callable[[str, str], None] | None = None,
) -> None:
    """Run the emulator until SIGINT (Ctrl-C) or SIGTERM; for ``narrator serve``.

    Prints nothing: once it listens, ``ready`` (if given) gets its base URL (what a
    client takes as its base URL; the port the real one when ``port`` is 0) and the
    path it answers on.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Not on Windows, nor outside the main thread: Ctrl-C then still stops it below.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
        async with await start_emulator(config, host=host, port=port) as emulator:
            if ready is not None:
                ready(emulator.url, DIALECTS[config.api].path)
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
