"""Text-to-speech services behind one interface.

Each service implements :class:`Provider`; the pool, store and stitcher know nothing
of any one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..settings import Settings


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


def make_provider(settings: Settings) -> Provider:
    """The provider the settings ask for."""
    if settings.provider == "espeak":
        from .espeak import EspeakProvider

        return EspeakProvider()
    from .aimlapi import AimlApiProvider

    assert settings.api_key is not None  # Settings validated it
    return AimlApiProvider(
        api_key=settings.api_key,
        base_url=settings.base_url,
        model=settings.model,
        timeout=settings.request_timeout,
    )
