"""``narrator say``: one short text, one request, one WAV, to audition a respelling.

No store, no pool, no retries: what the voice makes of a text right now, with the
lexicon applied as a run would apply it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..chunks.language import resolve_language
from ..chunks.lexicon import Lexicon
from ..errors import AudioError, ConfigError, InputError
from ..inputs.documents import parse_text
from ..settings import Settings
from ..synth.providers import Provider, make_provider
from ..util.wav import read_wav_info

__all__ = ["Audition", "say"]


@dataclass(frozen=True, slots=True)
class Audition:
    """What ``say`` made: the WAV, the text as sent, and its seconds of audio."""

    path: Path
    spoken: str
    seconds: float


async def say(
    text: str,
    settings: Settings,
    *,
    output: Path | None = None,
    lexicon: Lexicon | None = None,
    provider: Provider | None = None,
) -> Audition:
    """Synthesize ``text`` (respelled by ``lexicon``) in one request into ``output``, or a
    new temporary ``.wav`` file when it is None.

    Raises :class:`ConfigError` for a text longer than one request may carry, and the
    provider's errors as they come (nothing is retried).
    """
    text = " ".join(text.split())
    if not text:
        raise InputError("nothing to say: the text is empty")
    lang = resolve_language(parse_text(text), settings.lang)
    spoken = (lexicon or Lexicon()).apply(text, lang, settings.voice)
    own = provider is None
    provider = provider or make_provider(settings)
    try:
        limit = min(settings.max_chars, provider.max_chars)
        if provider.billing_chars(spoken) > limit:
            raise ConfigError(
                f"say: {provider.billing_chars(spoken)} characters is more than one request "
                f"carries ({limit}); narrate a longer text with `narrator narrate`"
            )
        audio = await provider.synthesize(
            spoken, voice=settings.voice, request_id=f"say-{uuid.uuid4().hex[:12]}"
        )
        if output is None:
            handle, name = tempfile.mkstemp(prefix="narrator-say-", suffix=".wav")
            os.close(handle)
            output = Path(name)
        partial = output.with_name(output.name + ".part")
        if audio.data is not None:
            partial.write_bytes(audio.data)
        elif audio.url is not None:
            await provider.download(audio.url, partial, max_bytes=settings.max_segment_bytes)
        else:
            raise AudioError("the service answered with no audio")
        try:
            info = read_wav_info(partial)
        except AudioError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(output)
    finally:
        if own:
            await provider.aclose()
    return Audition(output, spoken, round(info.seconds, 3))
