"""The emulator's audio: speech from eSpeak NG or a tone, and the bad audio it can send."""

from __future__ import annotations

import math
import random
import warnings

from ...synth.espeakng import VOICES, get_engine
from ...util.wav import parse_wav, tone_pcm, wav_bytes

with warnings.catch_warnings():
    # audioop is deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); the
    # warning must not become an error under pytest's filterwarnings=error.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["SAMPLE_RATE", "espeak_wav", "spoil", "tone_wav"]

SAMPLE_RATE = 24000  # what the real service returns
_TONE_SECONDS_PER_CHARACTER = 1 / 15
_MIN_SECONDS = 0.2


def spoil(wav: bytes, kind: str, rng: random.Random) -> bytes:
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


def espeak_wav(voice: str, text: str) -> bytes:
    """``text`` read by eSpeak NG in the variant of the qwen voice ``voice``, at 24 kHz."""
    engine = get_engine()
    pcm = engine.synthesize(text, voice)
    pcm, _ = audioop.ratecv(pcm, 2, 1, engine.sample_rate, SAMPLE_RATE, None)
    return wav_bytes(_pad(pcm), SAMPLE_RATE)


_tone_seconds: dict[int, bytes] = {}


def tone_wav(voice: str, text: str) -> bytes:
    """A sine wave, one pitch per voice, as long as ``text`` would take to read."""
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
