"""Text-to-speech services behind one interface.

Each service implements :class:`Provider`: it synthesizes one chunk, says how long a
chunk may be and how its characters are counted, lists its voices, and translates its
own errors into :mod:`narrator.errors`. The splitter, pool, store and stitcher know
nothing of any one service; :func:`make_provider` picks one from the settings.

Services: ``aimlapi`` (the AIML API), ``dashscope`` (Alibaba Model Studio's native
API), ``openai`` (``POST /v1/audio/speech``: OpenAI and OpenAI-compatible servers such
as Kokoro-FastAPI) and ``espeak`` (offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...settings import Settings


@dataclass(frozen=True, slots=True)
class Audio:
    """What one synthesis returned: a link to fetch, or the WAV bytes themselves."""

    url: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Voice:
    """One voice of a service: its name and the languages or dialect it speaks."""

    name: str
    description: str


class Provider(Protocol):
    """A text-to-speech service."""

    name: str
    model: str
    identity: str  # what the cache key needs to tell this service's audio from another's
    max_chars: int  # the most characters one request may carry, as billing_chars counts
    voices: tuple[Voice, ...]  # what `narrator voices` lists; not necessarily exhaustive

    def billing_chars(self, text: str) -> int:
        """Characters in ``text`` as this service counts them, for its limit and its bill."""
        ...

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        """Synthesize one chunk. Raises a :class:`~narrator.errors.ProviderError` or
        :class:`~narrator.errors.StopRun` subclass on failure."""
        ...

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> None:
        """Stream the audio at ``url`` into ``dest``; raises ``LinkExpired`` for a dead
        link and ``BadDownload`` for a short or broken body."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def provider_voices(name: str) -> tuple[Voice, ...]:
    """The voices of the provider called ``name`` (one of ``settings.PROVIDERS``)."""
    if name == "espeak":
        from .espeak import EspeakProvider

        return EspeakProvider.voices
    if name == "openai":
        from .openai import VOICES

        return VOICES
    from .qwen import VOICES as QWEN_VOICES  # aimlapi and dashscope serve the same model

    return QWEN_VOICES


def make_provider(settings: Settings) -> Provider:
    """The provider ``settings.provider`` names, configured from the settings."""
    if settings.provider == "espeak":
        from .espeak import EspeakProvider

        return EspeakProvider()
    if settings.provider == "openai":
        from .openai import OpenAiProvider

        return OpenAiProvider(
            api_key=settings.api_key,
            base_url=settings.base_url,
            model=settings.model,
            timeout=settings.request_timeout,
        )
    assert settings.api_key is not None  # Settings validated it
    from ...util.netpolicy import NetPolicy

    network = NetPolicy.make(
        endpoint=settings.base_url,
        hosts=settings.allow_hosts,
        allow_private=settings.allow_private_network,
    )
    if settings.provider == "dashscope":
        from .dashscope import DashScopeProvider

        return DashScopeProvider(
            api_key=settings.api_key,
            base_url=settings.base_url,
            model=settings.model,
            lang=settings.lang,
            timeout=settings.request_timeout,
            network=network,
        )
    from .aimlapi import AimlApiProvider

    return AimlApiProvider(
        api_key=settings.api_key,
        base_url=settings.base_url,
        model=settings.model,
        timeout=settings.request_timeout,
        network=network,
    )
