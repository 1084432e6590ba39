"""Speech whose sentence starts are known: the truth the read-along timings are measured
against (``make bench``, tests).

A real voice reads a chunk in one go and says nowhere where each sentence starts. Here
each sentence is read by eSpeak NG on its own, its own lead and tail silence cut off,
and the sentences are joined by pauses drawn as real voices are assumed to make them
(:data:`SENTENCE_PAUSE`, :data:`PARAGRAPH_PAUSE`), over a faint noise floor: so where
each sentence starts is known to the sample. Inside a sentence the pauses are eSpeak's
own (commas, clause ends), which the timings must not take for sentence ends.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from ...synth.espeakng import get_engine
from ...util.wav import wav_bytes
from .audio import SAMPLE_RATE

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # see audio.py
    import audioop

__all__ = ["PARAGRAPH_PAUSE", "SENTENCE_PAUSE", "TimedSpeech", "timed_speech"]

# Seconds of silence a real voice is assumed to leave (drawn uniformly in between).
SENTENCE_PAUSE = (0.18, 0.55)
PARAGRAPH_PAUSE = (0.4, 0.9)
EDGE = (0.05, 0.3)  # before the first sentence and after the last
NOISE_DBFS = -65.0  # the floor under everything: a real answer is never digital zero
_SOUND = 10 ** (-40 / 20) * 32768  # where a sentence's own lead and tail end


@dataclass(frozen=True, slots=True)
class TimedSpeech:
    """A segment (WAV bytes, 24 kHz mono 16-bit) and where each sentence starts in it."""

    wav: bytes
    starts: tuple[float, ...]  # seconds from the segment's first sample
    seconds: float


def _trimmed(pcm: bytes) -> bytes:
    """``pcm`` from its first sound to its last (10 ms steps)."""
    step = SAMPLE_RATE // 100 * 2
    frames = [audioop.max(pcm[i : i + step], 2) for i in range(0, len(pcm), step)]
    loud = [n for n, level in enumerate(frames) if level >= _SOUND]
    if not loud:
        return pcm
    return pcm[loud[0] * step : (loud[-1] + 1) * step]


def timed_speech(
    sentences: Sequence[str],
    *,
    voice: str = "Cherry",
    paragraph_starts: Sequence[bool] = (),
    rng: random.Random,
    pauses: tuple[float, float] = SENTENCE_PAUSE,
) -> TimedSpeech:
    """``sentences`` read one after another with known pauses (``pauses``: the shortest
    and longest between two sentences); ``paragraph_starts[i]`` says sentence ``i``
    opens a paragraph (a longer pause before it)."""
    engine = get_engine()
    pieces: list[bytes] = []
    starts: list[float] = []
    at = 0

    def silence(seconds: float) -> bytes:
        return b"\0\0" * round(seconds * SAMPLE_RATE)

    for n, sentence in enumerate(sentences):
        if n == 0:
            gap = silence(rng.uniform(*EDGE))
        else:
            opens = n < len(paragraph_starts) and paragraph_starts[n]
            gap = silence(rng.uniform(*(PARAGRAPH_PAUSE if opens else pauses)))
        pcm = engine.synthesize(sentence, voice)
        pcm, _ = audioop.ratecv(pcm, 2, 1, engine.sample_rate, SAMPLE_RATE, None)
        pcm = _trimmed(pcm) or silence(0.2)
        pieces += [gap, pcm]
        at += len(gap)
        starts.append(at / 2 / SAMPLE_RATE)
        at += len(pcm)
    pieces.append(silence(rng.uniform(*EDGE)))
    pcm = b"".join(pieces)
    noise = audioop.mul(rng.randbytes(len(pcm)), 2, 10 ** (NOISE_DBFS / 20))
    pcm = audioop.add(pcm, noise, 2)
    return TimedSpeech(wav_bytes(pcm, SAMPLE_RATE), tuple(starts), len(pcm) / 2 / SAMPLE_RATE)
