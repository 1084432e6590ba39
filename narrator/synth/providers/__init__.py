"""Text-to-speech services behind one interface.

Each service implements :class:`Provider`: it synthesizes one chunk, says how long a
chunk may be and how its characters are counted, lists its voices, and translates its
own errors into :mod:`narrator.errors`. The splitter, pool, store and stitcher know
nothing of any one service; :func:`make_provider` picks one from the settings, through
the registry: each service's defaults and voices in :mod:`narrator.util.registry`, its
class in :mod:`.registry`.

Services: ``aimlapi`` (the AIML API), ``dashscope`` (Alibaba Model Studio's native
API), ``openai`` (``POST /v1/audio/speech``: OpenAI and OpenAI-compatible servers such
as Kokoro-FastAPI) and ``espeak`` (offline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...util.netpolicy import NetPolicy
from ...util.registry import Voice, spec

__all__ = [
    "Audio",
    "Provider",
    "ProviderConfig",
    "Voice",
    "counting",
    "make_provider",
    "provider_voices",
]


@dataclass(frozen=True, slots=True)
class Audio:
    """What one synthesis returned: a link to fetch, or the WAV bytes themselves."""

    url: str | None = None
    data: bytes | None = None


class Provider(Protocol):
    """A text-to-speech service."""

    name: str
    model: str
    identity: str  # what the cache key needs to tell this service's audio from another's
    max_chars: int  # the most characters one request may carry, as billing_chars counts
    voices: tuple[Voice, ...]  # what `narrator voices` lists; not necessarily exhaustive

    def billing_chars(self, text: str, /) -> int:
        """Characters in ``text`` as this service counts them, for its limit and its bill
        (a static method: the estimate counts with the class alone)."""
        ...

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        """Synthesize one chunk. Raises a :class:`~narrator.errors.ProviderError` or
        :class:`~narrator.errors.StopRun` subclass on failure."""
        ...

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        """Fetch the audio at ``url``: returned when it is at most ``keep`` bytes (and
        the provider chose to hold it), else streamed into ``dest`` and None returned.
        Raises ``LinkExpired`` for a dead link and ``BadDownload`` for a short or broken
        body."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class ProviderConfig(Protocol):
    """What :func:`make_provider` reads from the settings (a
    :class:`~narrator.settings.Settings` is one)."""

    @property
    def provider(self) -> str: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def base_url(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def lang(self) -> str: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def allow_hosts(self) -> tuple[str, ...]: ...
    @property
    def allow_private_network(self) -> bool: ...


def provider_voices(name: str) -> tuple[Voice, ...]:
    """The voices of the registered provider called ``name``."""
    return spec(name).voices


def counting(name: str) -> tuple[int, Callable[[str], int]]:
    """The per-request limit and the character count of provider ``name``, read from its
    class: what an estimate splits with, with no client made and no key needed."""
    from .registry import provider_class  # the clients' modules, only when asked for

    cls = provider_class(name)
    return cls.max_chars, cls.billing_chars


def make_provider(settings: ProviderConfig) -> Provider:
    """The provider ``settings.provider`` names, configured from the settings.

    Every provider class takes the same keywords; one that needs no network or key
    ignores them.
    """
    from .registry import provider_class  # the clients' modules, only when asked for

    cls = provider_class(settings.provider)
    network = NetPolicy.make(
        endpoint=settings.base_url,
        hosts=settings.allow_hosts,
        allow_private=settings.allow_private_network,
    )
    provider: Provider = cls(
        api_key=settings.api_key,
        base_url=settings.base_url,
        model=settings.model,
        lang=settings.lang,
        timeout=settings.request_timeout,
        network=network,
    )
    return provider
