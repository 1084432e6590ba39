"""Settings: every knob of a run, validated once.

The library takes a :class:`Settings` and never reads the environment; the CLI builds
one from flags, the environment (secrets only) and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

PROVIDERS = ("aimlapi", "espeak")
DEFAULT_BASE_URL = "https://api.aimlapi.com"
DEFAULT_MODEL = "alibaba/qwen3-tts-flash"


@dataclass(frozen=True, slots=True)
class Settings:
    """How to narrate. Defaults suit the AIML API's ``alibaba/qwen3-tts-flash``."""

    provider: str = "aimlapi"
    api_key: str | None = field(default=None, repr=False)  # never shown in logs or reprs
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    voice: str = "Cherry"
    concurrency: int = 4
    rpm: float = 60.0
    max_chars: int = 600
    lang: str = "en"
    gap_ms: int = 300
    chapter_gap_ms: int = 1200
    cache_dir: Path | None = None  # None: ~/.cache/narrator
    retries: int = 8  # attempts per chunk, the first included
    backoff_base: float = 0.5  # seconds; 0 turns backoff off (tests)
    backoff_max: float = 30.0  # also caps a service's Retry-After
    adaptive_rate: bool = True
    request_timeout: float = 120.0
    max_segment_bytes: int = 50 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"unknown provider {self.provider!r}; choose one of {', '.join(PROVIDERS)}"
            )
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if not self.rpm > 0:
            raise ConfigError("--rpm must be greater than 0")
        if self.max_chars < 2:
            raise ConfigError("--max-chars must be at least 2 (a Han character counts 2)")
        if self.gap_ms < 0 or self.chapter_gap_ms < 0:
            raise ConfigError("gaps cannot be negative")
        if self.retries < 1:
            raise ConfigError("--retries must be at least 1")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--base-url must start with http:// or https://, not {self.base_url!r}"
            )
        if self.provider == "aimlapi" and not self.api_key:
            raise ConfigError(
                "no API key: set AIMLAPI_KEY (or pass --api-key), or use --provider espeak "
                "to narrate offline"
            )

    @property
    def store_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else Path.home() / ".cache" / "narrator"

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]
