"""The emulator's audio: speech from eSpeak NG, speech-like clips cut from a pool of it,
or a tone, and the bad audio it can send."""

from __future__ import annotations

import itertools
import math
import random
import threading
import warnings
import zlib

from ...synth.espeakng import VOICES, get_engine
from ...util.wav import parse_wav, tone_pcm, wav_bytes

with warnings.catch_warnings():
    # audioop is deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); the
    # warning must not become an error under pytest's filterwarnings=error.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["SAMPLE_RATE", "espeak_wav", "speech_wav", "spoil", "tone_wav"]

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


# What the speech engine's pool reads: plain prose with commas and full stops, so the
# pool has the pauses, pitch moves and consonants an encoder meets in real narration.
_POOL_TEXT = (
    "The village stood at the edge of the marsh, where the river slowed and spread into "
    "a hundred shallow channels. In the mornings a thin mist lay over the water, and the "
    "herons waited in it without moving, as if they had been carved there. Nobody in the "
    "village remembered who had built the first house, or why anyone had chosen such a "
    "damp and lonely place. Still, the soil was rich, the fishing was good, and the "
    "winters, though long, were seldom cruel. Every spring the children raced paper boats "
    "along the ditches, shouting the names of ships they had only read about. Their "
    "grandmothers watched from the doorways, knitting, and told each other that the water "
    "was higher than last year. It always was, they said, and it always would be. When the "
    "schoolmaster arrived, a thin young man with a cardboard suitcase and an umbrella "
    "that would not close, he asked how far it was to the sea. Three hours by boat, they "
    "told him, or a day on foot, if you knew the path, and nobody did any more."
)
_FADE = 240  # samples (10 ms) faded out at a clip's end, so it does not end in a click
_QUIET = 480  # samples (20 ms) in a window that may start a clip: a pause before a word
# Per voice: the pool's samples, and (where a pause ends, samples of sound after it).
_pools: dict[str, tuple[bytes, tuple[tuple[int, int], ...]]] = {}
_pools_lock = threading.Lock()


def _pool(voice: str) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """About a minute of ``voice`` reading :data:`_POOL_TEXT` at 24 kHz, and the sample
    offsets where its pauses end (where a clip may start), each with the length of the
    sound that follows."""
    with _pools_lock:
        found = _pools.get(voice)
        if found is None:
            engine = get_engine()
            pcm = engine.synthesize(_POOL_TEXT, voice)
            pcm, _ = audioop.ratecv(pcm, 2, 1, engine.sample_rate, SAMPLE_RATE, None)
            loud = audioop.rms(pcm, 2)
            step = 2 * _QUIET
            levels = [audioop.rms(pcm[i : i + step], 2) for i in range(0, len(pcm) - step, step)]
            # The end of a pause: a clip starts with speech, as an answer does (a short
            # text cut from the middle of a pause would sound "cut" to the quality gate).
            quiet = [level < loud / 20 for level in levels]
            onsets = []
            for n, (here, after) in enumerate(itertools.pairwise(quiet)):
                if here and not after:
                    run = next((k for k, q in enumerate(quiet[n + 1 :]) if q), len(quiet) - n)
                    onsets.append(((n + 1) * _QUIET, run * _QUIET))
            found = _pools[voice] = (pcm, tuple(onsets) or ((0, len(pcm) // 2),))
        return found


def speech_wav(voice: str, text: str) -> bytes:
    """Speech as long as ``text`` would take to read (15 characters a second, as the tone),
    cut from a pool of eSpeak NG speech in ``voice``'s variant and looped as needed.

    It sounds like speech to an encoder (which is 2-3x slower on speech than on a tone)
    at no synthesis cost per request: one pool per voice, built on first use. Where the
    clip starts depends on the text, so different texts get different audio.
    """
    pcm, onsets = _pool(voice)
    seconds = max(_MIN_SECONDS, len(text) * _TONE_SECONDS_PER_CHARACTER)
    size = int(seconds * SAMPLE_RATE) * 2
    # A clip opens with a run of sound (up to a second, all of a short one): a word or
    # two read aloud is not mostly pause.
    need = min(size, 2 * SAMPLE_RATE)
    fits = [start for start, run in onsets if 2 * run >= need]
    longest = max(run for _, run in onsets)
    starts = fits or [start for start, run in onsets if run == longest]
    start = 2 * starts[zlib.crc32(text.encode()) % len(starts)]
    looped = pcm[start:] + pcm * math.ceil(size / len(pcm))
    clip = looped[:size]
    fade = min(_FADE, len(clip) // 4) * 2
    steps = 8
    tail = b"".join(
        audioop.mul(part, 2, 1 - (k + 1) / steps)
        for k, part in enumerate(_slices(clip[len(clip) - fade :], steps))
    )
    return wav_bytes(clip[: len(clip) - fade] + tail, SAMPLE_RATE)


def _slices(pcm: bytes, count: int) -> list[bytes]:
    """``pcm`` in ``count`` parts of whole samples (the last takes the rest)."""
    step = len(pcm) // count // 2 * 2
    return [pcm[k * step : (k + 1) * step if k < count - 1 else len(pcm)] for k in range(count)]
