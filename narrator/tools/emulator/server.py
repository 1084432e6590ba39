"""A local stand-in for the AIML API text-to-speech endpoint, faithful enough to test against.

It speaks HTTP like the real service (``POST /v1/tts`` with model
``alibaba/qwen3-tts-flash``, signed audio links that expire) and can misbehave on
purpose, so the client's handling of every documented failure is exercised over a
real socket. ``narrator serve`` runs it; tests start it on a loopback port.

Routes::

    POST /v1/tts               the endpoint; see "Order of checks" below
    GET  /audio/<id>.wav       the signed links it hands out (object-storage style)
    GET  /_emulator/stats      the :class:`EmulatorStats` as JSON (not in the real API;
                               it needs the key, as /v1/tts does)

Order of checks for ``POST /v1/tts``, each rejecting with the documented error body
``{"message", "path", "requestId", "statusCode", "timestamp"}``:

1. ``Authorization: Bearer <key>`` missing or wrong: 401.
2. Request rate over ``rpm`` (a token bucket holding ``max(1, rpm/60)`` tokens,
   refilled at ``rpm/60`` per second, because the upstream enforces its limit per
   second): 429. Requests in flight over ``max_concurrency``: 429.
3. Body not a JSON object matching the published schema: 400. ``text`` must be
   1-600 *billing* characters (Han counts 2), ``voice`` one of the 17 voices;
   unknown fields are ignored.
4. Credits spent (``billed_characters >= credits``): 403. Like a prepaid balance, a
   request is accepted while any credit is left, so the last one may overshoot.
5. ``latency`` seconds pass (counted in flight), then the fault knobs: a random
   500/502/503/504 (``fail_rate``) or a connection closed with no response at all
   (``drop_rate``).
6. Success, 201: the characters are billed and the audio (WAV, 24 kHz mono 16-bit,
   like the real service) is returned in the configured shape: ``object``
   (``{"audio": {"url"}, "usage": {"characters"}}``), ``string``
   (``{"audio": url, "meta": {"usage": {"credits_used", "usd_spent"}}}``) or
   ``binary`` (the WAV as the body). ``mixed`` takes the n-th success's shape from
   object, string, binary in turn and its status from 201, 200 in turn. With
   ``bad_audio_rate``, a success may carry bad audio, billed all the same: silent (a
   faint hiss), cut (its first 40%) or runaway (3 s of silence, then 8 s of noise).

Audio links expire ``url_ttl`` seconds after they are issued (403, as object storage
says); a link with a wrong signature is 403 too, an unknown clip 404. Clips are freed
once their link has expired, and the oldest go first past 256 MiB.

Other APIs (``EmulatorConfig.api``), with the same checks, audio, faults and stats;
only the selected API's endpoint is routed, so a client pointed at the wrong one gets
404:

- ``dashscope``: ``POST /api/v1/services/aigc/multimodal-generation/generation`` with
  ``{"model": "qwen3-tts-flash", "input": {"text", "voice", "language_type"}}``.
  Errors are ``{"request_id", "code", "message"}``: 401 ``InvalidApiKey``, 429
  ``Throttling.RateQuota`` / ``Throttling.AllocationQuota``, 400 ``InvalidParameter``,
  400 ``Arrearage`` (credits spent), 5xx ``InternalError``. Success is 200
  ``{"output": {"audio": {"url", "id", "expires_at", "data"}}, "usage"}``; the
  ``binary`` shape puts the WAV in ``data`` (base64) and leaves ``url`` empty.
- ``openai``: ``POST /v1/audio/speech`` with ``{"model", "input" (1-4096
  characters, each counting 1), "voice" (OpenAI's names), "response_format": "wav",
  "speed"}``; the WAV is the body, its header giving the length as unknown as
  OpenAI's streamed WAVs do. Errors are ``{"error": {"message", "type", "param",
  "code"}}``; credits spent is 429 ``insufficient_quota``. With ``api_key=None`` a
  request without a key is accepted, like a local server.

Every time read goes through one clock (``loop.time()`` unless one is injected), so
tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from ...errors import ConfigError
from ...synth.espeakng import VOICES, get_engine
from ...synth.providers.openai import VOICES as OPENAI_VOICES
from ...util.wav import parse_wav, tone_pcm, wav_bytes

with warnings.catch_warnings():
    # audioop is deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); the
    # warning must not become an error under pytest's filterwarnings=error.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "MODEL",
    "SAMPLE_RATE",
    "STATS",
    "EmulatorConfig",
    "EmulatorStats",
    "RunningEmulator",
    "billed_key",
    "create_app",
    "serve",
    "start_emulator",
]

MODEL = "alibaba/qwen3-tts-flash"
MAX_BILLING_CHARACTERS = 600
SAMPLE_RATE = 24000  # what the real service returns

APIS = ("aimlapi", "dashscope", "openai")
DASHSCOPE_MODEL = "qwen3-tts-flash"
DASHSCOPE_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
DASHSCOPE_LANGUAGES = (
    "Auto", "Chinese", "English", "German", "Italian", "Portuguese", "Spanish", "Japanese",
    "Korean", "French", "Russian",
)  # fmt: skip
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_MAX_CHARACTERS = 4096
# OpenAI's voice names, each read by one of the engine's (qwen-named) voices.
ENGINE_VOICES = dict(zip((v.name for v in OPENAI_VOICES), VOICES, strict=False))
_PATHS = {"aimlapi": "/v1/tts", "dashscope": DASHSCOPE_PATH, "openai": "/v1/audio/speech"}
# Each refusal's status and code per API: (status, code); None keeps the status given.
_REFUSALS: dict[str, dict[str, tuple[int | None, str]]] = {
    "aimlapi": {
        "auth": (401, ""), "rate": (429, ""), "busy": (429, ""), "invalid": (400, ""),
        "credits": (403, ""), "server": (None, ""),
    },
    "dashscope": {
        "auth": (401, "InvalidApiKey"), "rate": (429, "Throttling.RateQuota"),
        "busy": (429, "Throttling.AllocationQuota"), "invalid": (400, "InvalidParameter"),
        "credits": (400, "Arrearage"), "server": (None, "InternalError"),
    },
    "openai": {
        "auth": (401, "invalid_api_key"), "rate": (429, "rate_limit_exceeded"),
        "busy": (429, "rate_limit_exceeded"), "invalid": (400, "invalid_value"),
        "credits": (429, "insufficient_quota"), "server": (None, ""),
    },
}  # fmt: skip
_OPENAI_TYPES = {
    "invalid_api_key": "invalid_request_error",
    "rate_limit_exceeded": "requests",
    "invalid_value": "invalid_request_error",
    "insufficient_quota": "insufficient_quota",
    "": "server_error",
}

_SHAPES = ("object", "string", "binary")
BAD_AUDIO_KINDS = ("silent", "cut", "runaway")
_ENGINES = ("espeak", "tone")
_SERVER_ERRORS = (500, 502, 503, 504)
# The documented format of X-Client-Request-Id; other values are not echoed.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BEARER = re.compile(r"Bearer\s+(\S+)\s*", re.IGNORECASE)
_USD_PER_CHARACTER = 0.13 / 10_000  # illustrative only: the price is not published
_CACHE_ENTRIES = 128  # synthesized clips kept, so retries and repeats cost nothing
_STORE_BYTES = 256 * 1024 * 1024  # audio held for links; the oldest goes first past this
_TONE_SECONDS_PER_CHARACTER = 1 / 15
_MIN_SECONDS = 0.2

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves; every fault knob defaults to off.

    Rates (``fail_rate``, ``drop_rate``, ``truncate_rate``, ``bad_audio_rate``) are probabilities in
    [0, 1], drawn from a generator seeded with ``seed``.
    """

    api_key: str | None = None  # None: any non-empty bearer key is accepted
    rpm: float | None = None  # requests per minute; excess gets 429
    max_concurrency: int | None = None  # /v1/tts requests in flight; excess gets 429
    latency: float = 0.0  # seconds each /v1/tts request takes, counted in flight
    fail_rate: float = 0.0  # chance of a random 500/502/503/504
    shape: str = "object"  # object | string | binary | mixed
    engine: str = "espeak"  # espeak | tone (a sine wave as long as the text, for benchmarks)
    url_ttl: float = 86400.0  # seconds an audio link works; then 403
    drop_rate: float = 0.0  # chance of closing the connection with no response
    truncate_rate: float = 0.0  # chance an audio download is cut short
    credits: int | None = None  # billing characters the account may spend; then 403
    retry_after: float | None = None  # if set, 429 responses carry Retry-After
    seed: int | None = None  # seed for the fault knobs
    api: str = "aimlapi"  # aimlapi | dashscope | openai: which service's endpoint to play
    # The longest text accepted, counted the API's way; None: the documented limit (600
    # billing characters, 4096 for openai). Lower, it plays a service stricter than its docs.
    max_characters: int | None = None
    # Chance a success carries bad audio, billed like good audio, of one of these kinds:
    # silent, cut (the first 40% of it) or runaway (3 s of silence, then 8 s of noise).
    bad_audio_rate: float = 0.0
    bad_audio_kinds: tuple[str, ...] = BAD_AUDIO_KINDS

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"api must be aimlapi, dashscope or openai, not {self.api!r}")
        if self.shape not in (*_SHAPES, "mixed"):
            raise ConfigError(f"shape must be object, string, binary or mixed, not {self.shape!r}")
        if self.engine not in _ENGINES:
            raise ConfigError(f"engine must be espeak or tone, not {self.engine!r}")
        for name in ("fail_rate", "drop_rate", "truncate_rate", "bad_audio_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} is a probability between 0 and 1, not {value}")
        if self.api_key == "":
            raise ConfigError("api_key must not be empty; use None to accept any key")
        if self.rpm is not None and self.rpm <= 0:
            raise ConfigError(f"rpm must be positive, not {self.rpm}; use None for no limit")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(
                f"max_concurrency must be at least 1, not {self.max_concurrency}; "
                "use None for no limit"
            )
        for name in ("latency", "retry_after", "credits"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must not be negative, not {value}")
        if self.url_ttl <= 0:
            raise ConfigError(f"url_ttl must be positive, not {self.url_ttl}")
        unknown = set(self.bad_audio_kinds) - set(BAD_AUDIO_KINDS)
        if unknown or not self.bad_audio_kinds:
            raise ConfigError(
                f"bad_audio_kinds must be some of {', '.join(BAD_AUDIO_KINDS)}, "
                f"not {', '.join(sorted(unknown)) or 'none'}"
            )
        if self.max_characters is not None and self.max_characters < 1:
            raise ConfigError(f"max_characters must be at least 1, not {self.max_characters}")


@dataclass
class EmulatorStats:
    """Counters the emulator keeps, for tests and benchmarks to read."""

    requests: int = 0  # /v1/tts requests received
    statuses: dict[int, int] = field(default_factory=dict)  # /v1/tts status -> count
    in_flight: int = 0
    max_in_flight: int = 0
    starts: list[float] = field(default_factory=list)  # clock time of each /v1/tts arrival
    billed_characters: int = 0
    billed: dict[str, int] = field(default_factory=dict)  # billed_key() -> times billed
    downloads: int = 0  # GET /audio requests
    request_ids: list[str] = field(default_factory=list)  # X-Client-Request-Id values seen
    dropped: int = 0  # /v1/tts connections closed without a response
    truncated: int = 0  # audio downloads cut short
    bad_audio: dict[str, int] = field(default_factory=dict)  # kind -> bad answers billed
    bad_billed: dict[str, int] = field(default_factory=dict)  # billed_key() -> bad answers

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (status codes become string keys)."""
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in self.statuses.items()}
        return data


# Per-request records kept at most (starts, request ids, billed texts): a long-running
# emulator, or a client sending junk ids, must not grow its memory without bound.
_RECORDED = 100_000


def _remember(records: list[Any], item: Any) -> None:
    """Append ``item``, dropping the oldest half once there are more than _RECORDED."""
    records.append(item)
    if len(records) > _RECORDED:
        del records[: len(records) // 2]


def billed_key(voice: str, text: str) -> str:
    """The key of :attr:`EmulatorStats.billed`: sha256 of ``voice + "\\0" + text``."""
    return hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()


STATS = web.AppKey("narrator_emulator_stats", EmulatorStats)


class _Reject(Exception):
    """A request refused with an API error body; ``kind`` picks each API's status and code."""

    def __init__(self, status: int, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


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


@dataclass(slots=True)
class _Stored:
    created: float
    wav: bytes


class _AudioStore:
    """Audio behind the signed links, oldest first, bounded in age and total size."""

    def __init__(self, ttl: float, max_bytes: int = _STORE_BYTES) -> None:
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0

    def put(self, wav: bytes, now: float) -> str:
        audio_id = uuid.uuid4().hex
        self._items[audio_id] = _Stored(now, wav)
        self._bytes += len(wav)
        self.purge(now)
        return audio_id

    def get(self, audio_id: str) -> _Stored | None:
        return self._items.get(audio_id)

    def purge(self, now: float) -> None:
        # Insertion order is creation order, so expired entries are all at the front.
        while self._items:
            oldest = next(iter(self._items.values()))
            if now - oldest.created <= self._ttl and self._bytes <= self._max_bytes:
                break
            self._bytes -= len(self._items.popitem(last=False)[1].wav)


class _Emulator:
    """The state behind one app: config, counters, clock, limiter, caches."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self._clock = clock
        self._epoch: float | None = None  # unix time minus clock time
        self._rng = random.Random(config.seed)
        self._secret = secrets.token_bytes(16)
        self._bucket = _TokenBucket(config.rpm) if config.rpm is not None else None
        self._store = _AudioStore(config.url_ttl)
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

    # POST /v1/tts

    async def tts(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        now = self.now()
        stats.requests += 1
        _remember(stats.starts, now)
        inference_id = str(uuid.uuid4())
        headers = {"x-inference-id": inference_id}
        client_id = request.headers.get("X-Client-Request-Id")
        if client_id is not None:
            _remember(stats.request_ids, client_id[:128])
            if _CLIENT_ID.fullmatch(client_id):
                headers["X-Client-Request-Id"] = client_id
        self._store.purge(now)
        try:
            response = await self._tts(request, headers)
        except _Reject as exc:
            status, code = _REFUSALS[self.config.api][exc.kind]
            status = status or exc.status
            if status == 429 and self.config.retry_after is not None:
                headers["Retry-After"] = f"{self.config.retry_after:g}"
            response = self._error(status, code, exc.message, request.path, inference_id, headers)
        if response is None:
            stats.dropped += 1
            request.protocol.force_close()
            # Never sent: the transport is gone, and aiohttp treats that as a client
            # disconnection, quietly.
            return web.Response(status=500)
        stats.statuses[response.status] = stats.statuses.get(response.status, 0) + 1
        return response

    async def _tts(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        """The response, or None to drop the connection; refusals raise :class:`_Reject`."""
        config, stats = self.config, self.stats
        self.authorize(request.headers.get("Authorization"))
        if self._bucket is not None and not self._bucket.take(self.now()):
            raise _Reject(429, f"Too many requests: the limit is {config.rpm:g} per minute", "rate")
        if config.max_concurrency is not None and stats.in_flight >= config.max_concurrency:
            raise _Reject(
                429, f"Too many concurrent requests: the limit is {config.max_concurrency}", "busy"
            )
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            voice, text, billing = _VALIDATORS[config.api](
                await request.read(), config.max_characters
            )
            if config.credits is not None and stats.billed_characters >= config.credits:
                raise _Reject(
                    403, "You are out of credits: top up your balance to continue", "credits"
                )
            if config.latency:
                await asyncio.sleep(config.latency)
            if self.chance(config.fail_rate):
                status = self._rng.choice(_SERVER_ERRORS)
                raise _Reject(status, f"Upstream failure (emulated {status})", "server")
            if self.chance(config.drop_rate):
                return None
            wav = await self._audio(voice, text)
        finally:
            stats.in_flight -= 1
        stats.billed_characters += billing
        key = billed_key(voice, text)
        stats.billed[key] = stats.billed.get(key, 0) + 1
        if len(stats.billed) > _RECORDED:  # a long-running emulator forgets the oldest texts
            del stats.billed[next(iter(stats.billed))]
        if self.chance(config.bad_audio_rate):
            kind = self._rng.choice(config.bad_audio_kinds)
            wav = _spoil(wav, kind, self._rng)
            stats.bad_audio[kind] = stats.bad_audio.get(kind, 0) + 1
            stats.bad_billed[key] = stats.bad_billed.get(key, 0) + 1
            if len(stats.bad_billed) > _RECORDED:
                del stats.bad_billed[next(iter(stats.bad_billed))]
        return self._success(request, wav, billing, headers)

    def authorize(self, header: str | None) -> None:
        match = _BEARER.fullmatch(header or "")
        expected = self.config.api_key
        if match is None:
            if expected is None and self.config.api == "openai":
                return  # a local OpenAI-compatible server wants no key
            raise _Reject(
                401, "Missing API key: send the header 'Authorization: Bearer <key>'", "auth"
            )
        if expected is not None and not hmac.compare_digest(
            match.group(1).encode(), expected.encode()
        ):
            raise _Reject(401, "Invalid API key", "auth")

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        path: str,
        request_id: str,
        headers: dict[str, str],
    ) -> web.Response:
        """The selected API's error body."""
        api = self.config.api
        if api == "dashscope":
            body: dict[str, Any] = {"request_id": request_id, "code": code, "message": message}
        elif api == "openai":
            body = {
                "error": {
                    "message": message,
                    "type": _OPENAI_TYPES[code],
                    "param": None,
                    "code": code or None,
                }
            }
        else:
            return _api_error(status, message, path, request_id, headers)
        return web.json_response(body, status=status, headers=headers)

    def _success(
        self, request: web.Request, wav: bytes, billing: int, headers: dict[str, str]
    ) -> web.Response:
        shape, status = self.config.shape, 201
        if shape == "mixed":
            # Every (shape, status) pair in turn: 3 shapes x 2 codes, coprime, so six
            # successes cover all six combinations.
            n = self._successes
            shape, status = _SHAPES[n % 3], (201, 200)[n % 2]
        self._successes += 1
        if self.config.api == "openai":
            return web.Response(
                status=200, body=_streamed(wav), content_type="audio/wav", headers=headers
            )
        if self.config.api == "dashscope":
            return self._dashscope_success(request, wav, billing, shape, headers)
        if shape == "binary":
            return web.Response(status=status, body=wav, content_type="audio/wav", headers=headers)
        url = self._publish(request, wav)
        body: dict[str, Any]
        if shape == "object":
            body = {"audio": {"url": url}, "usage": {"characters": billing}}
        else:
            usd = round(billing * _USD_PER_CHARACTER, 8)
            body = {"audio": url, "meta": {"usage": {"credits_used": billing, "usd_spent": usd}}}
        return web.json_response(body, status=status, headers=headers)

    def _dashscope_success(
        self, request: web.Request, wav: bytes, billing: int, shape: str, headers: dict[str, str]
    ) -> web.Response:
        url, data = "", ""
        if shape == "binary":
            data = base64.b64encode(wav).decode()
        else:
            url = self._publish(request, wav)
        expires_at = int(self.unix(self.now()) + self.config.url_ttl)
        body = {
            "request_id": headers["x-inference-id"],
            "output": {
                "finish_reason": "stop",
                "audio": {
                    "url": url,
                    "id": f"audio_{uuid.uuid4().hex}",
                    "expires_at": expires_at,
                    "data": data,
                },
            },
            "usage": {"characters": billing},
        }
        return web.json_response(body, status=200, headers=headers)

    # Audio links

    def _sign(self, audio_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{audio_id}\n{expires}".encode(), "sha256").hexdigest()

    def _publish(self, request: web.Request, wav: bytes) -> str:
        now = self.now()
        audio_id = self._store.put(wav, now)
        expires = str(int(self.unix(now) + self.config.url_ttl))
        signature = self._sign(audio_id, expires)
        return (
            f"{request.url.origin()}/audio/{audio_id}.wav"
            f"?Expires={expires}&OSSAccessKeyId=emulator&Signature={signature}"
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET /audio/<id>.wav``: the audio, or an object-storage style refusal."""
        self.stats.downloads += 1
        now = self.now()
        self._store.purge(now)
        name = request.match_info["name"]
        audio_id = name.removesuffix(".wav")
        expires = request.query.get("Expires", "")
        signed = hmac.compare_digest(
            self._sign(audio_id, expires), request.query.get("Signature", "")
        )
        item = self._store.get(audio_id) if name.endswith(".wav") else None
        if item is None:
            # Purged for age: a link we signed whose Expires has passed.
            if signed and expires.isdigit() and self.unix(now) >= int(expires):
                return _oss_error(403, "AccessDenied", "Request has expired.")
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if not signed:
            return _oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if now - item.created > self.config.url_ttl:
            return _oss_error(403, "AccessDenied", "Request has expired.")
        if self.chance(self.config.truncate_rate):
            self.stats.truncated += 1
            return await _truncated(request, item.wav)
        return web.Response(body=item.wav, content_type="audio/wav")

    # Synthesis

    async def _audio(self, voice: str, text: str) -> bytes:
        key = (voice, text)
        wav = self._cache.get(key)
        if wav is not None:
            self._cache.move_to_end(key)
            return wav
        voice = ENGINE_VOICES.get(voice, voice)
        if self.config.engine == "espeak":
            # eSpeak takes ~0.1-1 s for 600 characters; keep the loop serving meanwhile.
            wav = await asyncio.to_thread(_espeak_wav, voice, text)
        else:
            wav = _tone_wav(voice, text)
        self._cache[key] = wav
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return wav


def _validate(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, billing characters) from a request body, or 400."""
    from ...chunks.split import billing_chars

    limit = limit or MAX_BILLING_CHARACTERS

    try:
        payload = json.loads(body)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        raise _Reject(400, "The request body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise _Reject(400, "The request body must be a JSON object")
    problems = []
    if payload.get("model") != MODEL:
        problems.append(f"model must be one of the following values: {MODEL}")
    text = payload.get("text")
    billing = 0
    if not isinstance(text, str):
        problems.append("text must be a string")
    else:
        billing = billing_chars(text)
        if billing < 1:
            problems.append("text must be longer than or equal to 1 characters")
        elif billing > limit:
            problems.append(
                f"text must be shorter than or equal to {limit} characters "
                f"(it counts {billing}: each Han character counts 2)"
            )
    voice = payload.get("voice")
    if not isinstance(voice, str) or voice not in VOICES:
        problems.append(f"voice must be one of the following values: {', '.join(VOICES)}")
    if problems:
        raise _Reject(400, "; ".join(problems))
    assert isinstance(text, str) and isinstance(voice, str)
    return voice, text, billing


def _object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        raise _Reject(400, "The request body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise _Reject(400, "The request body must be a JSON object")
    return payload


def _validate_dashscope(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, billing characters) from a DashScope request, or 400 InvalidParameter."""
    from ...chunks.split import billing_chars

    limit = limit or MAX_BILLING_CHARACTERS

    payload = _object(body)
    if payload.get("model") != DASHSCOPE_MODEL:
        raise _Reject(400, f"Model not exist: {payload.get('model')!r}")
    given = payload.get("input")
    if not isinstance(given, dict):
        raise _Reject(400, "input must be an object with text and voice")
    text, voice = given.get("text"), given.get("voice")
    if not isinstance(text, str) or not text:
        raise _Reject(400, "input.text must be a non-empty string")
    billing = billing_chars(text)
    if billing > limit:
        raise _Reject(
            400,
            f"Range of input length should be [1, {limit}] "
            f"(it counts {billing}: each Han character counts 2)",
        )
    if not isinstance(voice, str) or voice not in VOICES:
        raise _Reject(400, f"Voice {voice!r} is not supported; one of {', '.join(VOICES)}")
    language = given.get("language_type", "Auto")
    if language not in DASHSCOPE_LANGUAGES:
        raise _Reject(400, f"language_type must be one of {', '.join(DASHSCOPE_LANGUAGES)}")
    return voice, text, billing


def _validate_openai(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, characters) from an OpenAI speech request, or 400."""
    limit = limit or OPENAI_MAX_CHARACTERS
    payload = _object(body)
    if payload.get("model") not in OPENAI_MODELS:
        raise _Reject(400, f"model must be one of {', '.join(OPENAI_MODELS)}")
    text, voice = payload.get("input"), payload.get("voice")
    if not isinstance(text, str) or not text:
        raise _Reject(400, "input must be a non-empty string")
    if len(text) > limit:
        raise _Reject(400, f"input is {len(text)} characters; the maximum is {limit}")
    if not isinstance(voice, str) or voice not in ENGINE_VOICES:
        raise _Reject(400, f"voice must be one of {', '.join(ENGINE_VOICES)}")
    # Without response_format the real service sends MP3, which this emulator cannot make.
    if payload.get("response_format") != "wav":
        raise _Reject(400, "the emulator only makes response_format 'wav' (the default is mp3)")
    speed = payload.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4:
        raise _Reject(400, "speed must be a number between 0.25 and 4.0")
    return voice, text, len(text)


_VALIDATORS: dict[str, Callable[[bytes, int | None], tuple[str, str, int]]] = {
    "aimlapi": _validate,
    "dashscope": _validate_dashscope,
    "openai": _validate_openai,
}


def _streamed(wav: bytes) -> bytes:
    """The WAV with its sizes unknown (0xFFFFFFFF), as a streaming encoder writes it."""
    data = wav.find(b"data", 12)
    unknown = b"\xff\xff\xff\xff"
    return wav[:4] + unknown + wav[8 : data + 4] + unknown + wav[data + 8 :]


def _api_error(
    status: int, message: str, path: str, request_id: str, headers: dict[str, str]
) -> web.Response:
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {
        "message": message,
        "path": path,
        "requestId": request_id,
        "statusCode": status,
        "timestamp": timestamp,
    }
    return web.json_response(body, status=status, headers=headers)


def _oss_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        f"  <RequestId>{uuid.uuid4().hex.upper()[:24]}</RequestId>\n"
        "  <HostId>emulator</HostId>\n</Error>\n"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


async def _truncated(request: web.Request, wav: bytes) -> web.StreamResponse:
    """Promise the whole file, send half, hang up: what a broken download looks like."""
    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    response.content_length = len(wav)
    await response.prepare(request)
    await response.write(wav[: len(wav) // 2])
    # close() flushes what was written, then closes: the client gets a short body.
    request.protocol.force_close()
    return response


def _spoil(wav: bytes, kind: str, rng: random.Random) -> bytes:
    """Good audio made bad the ways LLM voices are reported to fail, header still valid."""
    info = parse_wav(wav, len(wav))
    pcm = wav[info.data_offset : info.data_offset + info.data_size]
    rate = info.rate
    if kind == "silent":
        # Not digital zeros: a faint hiss (-70 dBFS) as a real silent answer has.
        hiss = audioop.mul(rng.randbytes(len(pcm)), 2, 10 ** (-70 / 20))
        return wav_bytes(hiss, rate)
    if kind == "cut":
        keep = int(len(pcm) * 0.4) // 2 * 2
        return wav_bytes(pcm[:keep], rate)
    silence = b"\0" * (3 * rate * 2)
    noise = audioop.mul(rng.randbytes(8 * rate * 2), 2, 0.3)
    return wav_bytes(pcm + silence + noise, rate)


def _pad(pcm: bytes) -> bytes:
    # The real service never returns an empty clip; punctuation alone still has a pause.
    return pcm.ljust(int(_MIN_SECONDS * SAMPLE_RATE) * 2, b"\0")


def _espeak_wav(voice: str, text: str) -> bytes:
    engine = get_engine()
    pcm = engine.synthesize(text, voice)
    pcm, _ = audioop.ratecv(pcm, 2, 1, engine.sample_rate, SAMPLE_RATE, None)
    return wav_bytes(_pad(pcm), SAMPLE_RATE)


_tone_seconds: dict[int, bytes] = {}


def _tone_wav(voice: str, text: str) -> bytes:
    # A whole number of hertz fits a whole number of periods in one second, so one
    # second of samples repeats without a click; building it once per voice keeps
    # long clips cheap.
    freq = 220 + 15 * list(VOICES).index(voice)
    second = _tone_seconds.get(freq)
    if second is None:
        second = _tone_seconds[freq] = tone_pcm(1.0, SAMPLE_RATE, freq=freq)
    seconds = max(_MIN_SECONDS, len(text) * _TONE_SECONDS_PER_CHARACTER)
    size = int(seconds * SAMPLE_RATE) * 2
    return wav_bytes((second * math.ceil(seconds))[:size], SAMPLE_RATE)


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
        except _Reject:
            return web.json_response({"message": "the stats need the API key"}, status=401)
        return web.json_response(emulator.stats.to_json())

    async def warm_up(_app: web.Application) -> None:
        # Load eSpeak NG before the first request, so a broken install fails at once.
        await asyncio.to_thread(get_engine)

    app.router.add_post(_PATHS[config.api], emulator.tts)
    app.router.add_get("/audio/{name}", emulator.download)
    app.router.add_get("/_emulator/stats", stats)
    if config.engine == "espeak":
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


def serve(config: EmulatorConfig, *, host: str, port: int) -> None:
    """Run the emulator until interrupted (Ctrl-C); for ``narrator serve``. Prints nothing."""
    web.run_app(create_app(config), host=host, port=port, print=None)
