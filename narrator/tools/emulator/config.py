"""How an emulator behaves (:class:`EmulatorConfig`) and what it counts (:class:`EmulatorStats`)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import ConfigError
from .dialects import DIALECTS

__all__ = [
    "APIS",
    "BAD_AUDIO_KINDS",
    "SHAPES",
    "EmulatorConfig",
    "EmulatorStats",
    "billed_key",
]

APIS = tuple(DIALECTS)  # as shipped; a dialect registered later is accepted too
SHAPES = ("object", "string", "binary")
BAD_AUDIO_KINDS = ("silent", "cut", "runaway")
_ENGINES = ("espeak", "speech", "tone")

# Per-request records kept at most (starts, request ids, billed texts): a long-running
# emulator, or a client sending junk ids, must not grow its memory without bound.
RECORDED = 100_000


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
    # Plus this many seconds per billing character: a real service takes longer for a longer
    # text, which is what makes the chunk size a trade-off worth measuring.
    latency_per_char: float = 0.0
    fail_rate: float = 0.0  # chance of a random 500/502/503/504
    shape: str = "object"  # object | string | binary | mixed
    # espeak (the text read by eSpeak NG) | speech (speech-like: clips cut from a pool of
    # eSpeak speech, as long as the text takes to read; cheap, for benchmarks) | tone (a
    # sine wave as long as the text)
    engine: str = "espeak"
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
        if self.api not in DIALECTS:
            raise ConfigError(f"api must be {_either(tuple(DIALECTS))}, not {self.api!r}")
        if self.shape not in (*SHAPES, "mixed"):
            raise ConfigError(f"shape must be object, string, binary or mixed, not {self.shape!r}")
        if self.engine not in _ENGINES:
            raise ConfigError(f"engine must be {_either(_ENGINES)}, not {self.engine!r}")
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
        for name in ("latency", "latency_per_char", "retry_after", "credits"):
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
    voices: dict[str, int] = field(default_factory=dict)  # voice -> requests billed
    downloads: int = 0  # GET /audio requests
    request_ids: list[str] = field(default_factory=list)  # X-Client-Request-Id values seen
    dropped: int = 0  # /v1/tts connections closed without a response
    truncated: int = 0  # audio downloads cut short
    bad_audio: dict[str, int] = field(default_factory=dict)  # kind -> bad answers billed
    bad_billed: dict[str, int] = field(default_factory=dict)  # billed_key() -> bad answers
    # Clock time the last success was answered and the last audio download was served:
    # when the client had its last segment, from which a benchmark times the finishing.
    last_success: float | None = None
    last_download: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (status codes become string keys)."""
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in self.statuses.items()}
        return data

    def arrived(self, now: float, client_id: str | None) -> None:
        """Count a request arriving at ``now``, with its X-Client-Request-Id if any."""
        self.requests += 1
        _remember(self.starts, now)
        if client_id is not None:
            _remember(self.request_ids, client_id[:128])

    def bill(self, key: str, billing: int, voice: str = "") -> None:
        """Count a success: ``billing`` characters for the text of :func:`billed_key` ``key``,
        read in ``voice``."""
        self.billed_characters += billing
        _count(self.billed, key)
        if voice:
            _count(self.voices, voice)

    def bill_bad(self, key: str, kind: str) -> None:
        """Count a success that carried bad audio of ``kind``."""
        self.bad_audio[kind] = self.bad_audio.get(kind, 0) + 1
        _count(self.bad_billed, key)


def _remember(records: list[Any], item: Any) -> None:
    """Append ``item``, dropping the oldest half once there are more than RECORDED."""
    records.append(item)
    if len(records) > RECORDED:
        del records[: len(records) // 2]


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
    if len(counts) > RECORDED:  # a long-running emulator forgets the oldest texts
        del counts[next(iter(counts))]


def _either(names: tuple[str, ...]) -> str:
    """``a, b or c``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def billed_key(voice: str, text: str) -> str:
    """The key of :attr:`EmulatorStats.billed`: sha256 of ``voice + "\\0" + text``."""
    return hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
