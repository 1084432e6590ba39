"""Settings: every knob of a run, validated once.

The library takes a :class:`Settings` and never reads the environment; the CLI builds
one from flags, the environment (secrets only) and defaults.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .book.audiobook import AudiobookOptions
from .errors import ConfigError
from .synth.sanity import MAX_GAP_MS
from .util.folders import default_cache_dir

PROVIDERS = ("aimlapi", "dashscope", "openai", "espeak")
QA_MODES = ("on", "strict", "off")
REGIONS = ("intl", "cn")
DEFAULT_BASE_URL = "https://api.aimlapi.com"
DEFAULT_MODEL = "alibaba/qwen3-tts-flash"
# What an empty base_url, model or voice means for each provider. DashScope's two
# regions are separate services with separate keys. "tts-1" is OpenAI's model, and
# OpenAI-compatible servers (Kokoro-FastAPI, ...) accept it as an alias of their own.
DEFAULT_BASE_URLS = {
    "aimlapi": DEFAULT_BASE_URL,
    "dashscope": "https://dashscope-intl.aliyuncs.com",
    "dashscope/cn": "https://dashscope.aliyuncs.com",
    "openai": "https://api.openai.com",
    "espeak": DEFAULT_BASE_URL,  # unused: eSpeak runs in-process
}


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    """What an unset model, voice, rate or concurrency means for one provider."""

    model: str
    voice: str
    rpm: float  # requests per minute; math.inf: no limit at all
    concurrency: int  # requests in flight


# One row per provider, so a provider registry can take it over whole. The remote
# rates are conservative starting points (AIML and DashScope allow about 180/minute per
# account upstream; OpenAI's first tier 50); --rpm raises them. The offline voice has
# no service to protect: no limit, and one request in flight per core.
PROVIDER_DEFAULTS = {
    "aimlapi": ProviderDefaults(DEFAULT_MODEL, "Cherry", rpm=60.0, concurrency=4),
    "dashscope": ProviderDefaults("qwen3-tts-flash", "Cherry", rpm=60.0, concurrency=4),
    "openai": ProviderDefaults("tts-1", "alloy", rpm=50.0, concurrency=4),
    "espeak": ProviderDefaults(
        "espeak-ng", "Cherry", rpm=math.inf, concurrency=os.cpu_count() or 1
    ),
}
DEFAULT_MODELS = {name: row.model for name, row in PROVIDER_DEFAULTS.items()}
DEFAULT_VOICES = {name: row.voice for name, row in PROVIDER_DEFAULTS.items()}


def describe_pace(provider: str) -> str:
    """A provider's default rate and concurrency in words, for --help and `voices`."""
    row = PROVIDER_DEFAULTS[provider]
    if math.isinf(row.rpm):  # the offline voice
        return f"no rate limit, one request in flight per core ({row.concurrency} here)"
    return f"{row.rpm:g} requests/minute, {row.concurrency} in flight"


# Where the CLI looks for each provider's key; the library itself never reads it.
KEY_VARIABLES = {
    "aimlapi": "AIMLAPI_KEY",
    "dashscope": "DASHSCOPE_API_KEY",
    "openai": "OPENAI_API_KEY",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """How to narrate. Defaults suit the AIML API's ``alibaba/qwen3-tts-flash``.

    An empty ``base_url``, ``model`` or ``voice`` becomes the provider's default
    (:data:`DEFAULT_BASE_URLS`, :data:`PROVIDER_DEFAULTS`); so does a ``rpm`` or
    ``concurrency`` of 0. ``region`` picks DashScope's international (Singapore) or
    Beijing endpoint. The voice is matched case-insensitively and stored in the
    service's spelling; an unknown voice or ``lang`` is a :class:`ConfigError`.
    """

    provider: str = "aimlapi"
    api_key: str | None = field(default=None, repr=False)  # never shown in logs or reprs
    base_url: str = ""
    model: str = ""
    voice: str = ""
    region: str = "intl"
    concurrency: int = 0  # 0: the provider's default
    rpm: float = 0.0  # 0: the provider's default; math.inf: no limit
    max_chars: int = 600
    lang: str = "auto"  # a pysbd code, or "auto": detected per document from its text
    gap_ms: int = 300
    chapter_gap_ms: int = 1200
    paragraph_gap_ms: int = 600  # between chunks that start a new paragraph
    # the output: format, tags, loudness, sidecars
    audiobook: AudiobookOptions = field(default_factory=AudiobookOptions)
    cache_dir: Path | None = None  # None: util.folders.default_cache_dir(), XDG's
    retries: int = 8  # attempts per chunk, the first included
    backoff_base: float = 0.5  # seconds; 0 turns backoff off (tests)
    backoff_max: float = 30.0  # also caps a service's Retry-After
    adaptive_rate: bool = True
    request_timeout: float = 120.0
    # No chunk progressing this long fails the run; None: the slowest request and download
    # (2 x request_timeout) plus three minutes.
    stall_timeout: float | None = None
    max_segment_bytes: int = 50 * 1024 * 1024
    # Audio links to these hosts, or (True) to any loopback/private address, are fetched
    # although they are not public; the endpoint's own host always is (see netpolicy).
    allow_hosts: tuple[str, ...] = ()
    allow_private_network: bool = False
    force: bool = False  # make audiobooks again even when they are up to date
    # The quality gate (quality.py): on (bad segments are synthesized again, then kept and
    # flagged), strict (a document with a flagged segment fails) or off.
    qa: str = "on"
    qa_retries: int = 2  # re-syntheses of one bad segment
    qa_budget: float = 5.0  # re-syntheses of bad segments in a run, in % of its chunks

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"unknown provider {self.provider!r}; choose one of {', '.join(PROVIDERS)}"
            )
        if self.region not in REGIONS:
            raise ConfigError(f"unknown region {self.region!r}; choose intl or cn")
        # Frozen: the defaults are filled in once, here, like the validation.
        if not self.base_url:
            where = "dashscope/cn" if self.provider == "dashscope" and self.region == "cn" else ""
            object.__setattr__(self, "base_url", DEFAULT_BASE_URLS[where or self.provider])
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.provider])
        if not self.voice:
            object.__setattr__(self, "voice", DEFAULT_VOICES[self.provider])
        defaults = PROVIDER_DEFAULTS[self.provider]
        if self.concurrency == 0:
            object.__setattr__(self, "concurrency", defaults.concurrency)
        if self.rpm == 0:
            object.__setattr__(self, "rpm", defaults.rpm)
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if not self.rpm > 0:
            raise ConfigError("--rpm must be greater than 0")
        from .preflight import check_lang, check_model, check_voice

        check_model(self.provider, self.model)
        object.__setattr__(
            self,
            "voice",
            check_voice(self.provider, self.voice, model=self.model, base_url=self.base_url),
        )
        check_lang(self.lang)
        if self.max_chars < 2:
            raise ConfigError("--max-chars must be at least 2 (a Han character counts 2)")
        if min(self.gap_ms, self.chapter_gap_ms, self.paragraph_gap_ms) < 0:
            raise ConfigError("gaps cannot be negative")
        if max(self.gap_ms, self.chapter_gap_ms, self.paragraph_gap_ms) > MAX_GAP_MS:
            raise ConfigError(f"gaps are at most {MAX_GAP_MS:,} ms (a minute)")
        if self.backoff_base < 0:
            raise ConfigError("--backoff cannot be negative")
        if self.stall_timeout is not None and not self.stall_timeout > 0:
            raise ConfigError("--stall-timeout must be greater than 0")
        if self.retries < 1:
            raise ConfigError("--retries must be at least 1")
        if self.qa not in QA_MODES:
            raise ConfigError(f"--qa {self.qa}: choose on, strict or off")
        if self.qa_retries < 0:
            raise ConfigError("--qa-retries cannot be negative")
        if self.qa_budget < 0:
            raise ConfigError("--qa-budget cannot be negative")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--base-url must start with http:// or https://, not {self.base_url!r}"
            )
        if self.api_key is not None and not (self.api_key.isascii() and self.api_key.isprintable()):
            # It goes into an HTTP header: a line break there is refused by aiohttp at the
            # first request, or worse, read by a server as a header of its own.
            raise ConfigError(
                "the API key holds a control character (a line break?) or non-ASCII text; "
                "check the variable or --api-key for stray characters"
            )
        if self.provider in ("aimlapi", "dashscope") and not self.api_key:
            # The OpenAI-compatible provider may go without: local servers want none.
            raise ConfigError(
                f"no API key: set {KEY_VARIABLES[self.provider]} (or pass --api-key), "
                "or use --provider espeak to narrate offline"
            )

    @property
    def stall_seconds(self) -> float:
        """How long the run may go without a chunk progressing."""
        if self.stall_timeout is not None:
            return self.stall_timeout
        return 2 * self.request_timeout + 180.0

    @property
    def store_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()
