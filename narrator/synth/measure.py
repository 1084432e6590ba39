"""The gate's reading of a segment's signal: levels per 40 ms frame, where the sound
starts and stops, the longest pause inside it, the longest run of noise.

Plain Python over the PCM bytes (``audioop`` for the per-frame peak and zero crossings,
both in C): about 0.02 ms per second of audio.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..util.wav import read_wav_info

with warnings.catch_warnings():
    # Deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); see emulator.py.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "FLOOR_DBFS",
    "FRAME",
    "NOISE_FRAMES",
    "NOISE_ZCR",
    "RELATIVE_DB",
    "Measurement",
    "measure_file",
    "measure_pcm",
]


FRAME = 0.04  # seconds per analysis frame: finer costs more and tells nothing new
FLOOR_DBFS = -50.0  # a frame peaking below this is silence, whatever the segment's own level
RELATIVE_DB = 40.0  # and so is one peaking this far below the segment's peak
NOISE_ZCR = 0.3  # zero crossings per sample: white noise ~0.5, voiced speech < 0.15
NOISE_FRAMES = 3  # one frame in this many is looked at for noise


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the gate reads from one segment's samples; times in seconds."""

    seconds: float  # the whole segment
    peak_dbfs: float  # -inf for digital silence
    voiced: float  # time above the silence threshold
    lead: float  # silence before the first sound
    span: float  # from the first sound to the last: the speech
    tail: float  # silence after the last sound
    pause: float  # the longest silence between two sounds
    noise: float  # the longest run of loud noise-like frames


def _dbfs(level: float, full: float) -> float:
    return 20 * math.log10(level / full) if level > 0 else -math.inf


def measure_pcm(
    pcm: bytes | memoryview, *, rate: int, channels: int = 1, width: int = 2
) -> Measurement:
    """Measure little-endian PCM samples (any rate, 8-32 bit, mono or interleaved)."""
    pcm = pcm[: len(pcm) - len(pcm) % (width * channels)]  # whole frames only
    if width == 1:  # WAV's 8-bit samples are unsigned; audioop wants them signed
        pcm = audioop.bias(pcm, 1, -128)
    if channels == 2:
        pcm = audioop.tomono(pcm, width, 0.5, 0.5)
    elif channels > 2:  # rare; the first channel tells silence from sound well enough
        step = width * channels
        pcm = b"".join(pcm[i : i + width] for i in range(0, len(pcm) - step + 1, step))
    full = float(1 << (8 * width - 1))
    samples = len(pcm) // width
    seconds = samples / rate
    if samples == 0:
        return Measurement(0.0, -math.inf, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    size = max(1, round(rate * FRAME)) * width
    view = memoryview(pcm)  # slices of a view are not copies
    # A frame's level is its peak: as good as its RMS to tell sound from silence, and
    # cheaper (this scan is most of the gate's cost).
    levels = [audioop.max(view[i : i + size], width) for i in range(0, len(pcm), size)]
    loudest = max(levels)
    threshold = max(full * 10 ** (FLOOR_DBFS / 20), loudest * 10 ** (-RELATIVE_DB / 20))
    frame = size // width / rate
    loud = [i for i, level in enumerate(levels) if level >= threshold]
    peak = _dbfs(loudest, full)
    if not loud:
        return Measurement(seconds, peak, 0.0, seconds, 0.0, 0.0, 0.0, 0.0)
    first, last = loud[0], loud[-1]
    pause = max((b - a - 1 for a, b in itertools.pairwise(loud)), default=0)
    # Noise lasts, so one loud frame in every NOISE_FRAMES is enough to find it: its zero
    # crossings are counted, and a run of noisy ones is a run of noise.
    noise = run = 0
    for i in range(first, last + 1, NOISE_FRAMES):
        part = view[i * size : (i + 1) * size]
        crossings = audioop.cross(part, width) if levels[i] >= threshold else 0
        if crossings >= NOISE_ZCR * (len(part) // width):
            run += 1
            noise = max(noise, run)
        else:
            run = 0
    span_end = min(seconds, (last + 1) * frame)
    return Measurement(
        seconds=round(seconds, 4),
        peak_dbfs=round(peak, 2),
        voiced=round(min(seconds, len(loud) * frame), 4),
        lead=round(first * frame, 4),
        span=round(span_end - first * frame, 4),
        tail=round(max(0.0, seconds - span_end), 4),
        pause=round(pause * frame, 4),
        noise=round(noise * NOISE_FRAMES * frame, 4),
    )


def measure_file(path: Path) -> Measurement:
    """Measure the WAV file at ``path`` (checked like every segment: RIFF/WAVE PCM)."""
    info = read_wav_info(path)
    with path.open("rb") as fh:
        fh.seek(info.data_offset)
        pcm = fh.read(info.data_size)
    return measure_pcm(pcm, rate=info.rate, channels=info.channels, width=info.width)
