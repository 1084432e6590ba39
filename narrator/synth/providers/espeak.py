"""eSpeak NG in-process: narrate offline, with no server and no key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ...chunks.split import billing_chars
from ...errors import BadRequest, LinkRefused
from ...util.registry import ESPEAK_VOICES
from ...util.wav import wav_bytes
from . import Audio, Voice

__all__ = ["EspeakProvider"]


class EspeakProvider:
    """The offline voice that also speaks for the emulator."""

    name = "espeak"
    model = "espeak-ng"
    identity = "espeak|espeak-ng"
    max_chars = 600  # no service limit; chunks this size keep memory and progress steady
    voices: tuple[Voice, ...] = ESPEAK_VOICES  # the registry's, written once

    # Counted as the qwen voices it stands in for count, so chunks match theirs.
    billing_chars = staticmethod(billing_chars)

    def __init__(self, **_options: object) -> None:
        """Takes (and needs none of) the keywords every provider takes: no key, no network."""

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        from ..espeakng import get_engine

        engine = await asyncio.to_thread(get_engine)
        try:
            pcm = await asyncio.to_thread(engine.synthesize, text, voice)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        return Audio(data=wav_bytes(pcm, engine.sample_rate))

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise LinkRefused("the espeak provider has no links to download")

    async def aclose(self) -> None:
        return None
