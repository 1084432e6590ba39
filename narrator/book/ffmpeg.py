"""ffmpeg, found and run: the one on ``PATH``, else the binary the ``imageio-ffmpeg``
wheel ships; every run bounded in time. Loudness normalisation is EBU R128 in two passes
over the whole book (``loudnorm``: measure, then apply with the measurement)."""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioError, ConfigError
from ..util.wav import read_wav_info

__all__ = ["Loudness", "ffmpeg_exe", "measure_loudness", "normalize_wav"]


PCM_CODECS = {1: "pcm_u8", 2: "pcm_s16le", 3: "pcm_s24le", 4: "pcm_s32le"}


@dataclass(frozen=True, slots=True)
class Loudness:
    """An EBU R128 measurement by ffmpeg's ``loudnorm`` (LUFS, dBTP, LU)."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg to run: the one on ``PATH``, else the one imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise ConfigError("no ffmpeg: install ffmpeg, or reinstall narrator") from exc


def time_bound(seconds: float) -> float:
    """How long ffmpeg may take over ``seconds`` of audio: real time plus ten minutes.

    It works many times faster than real time, so only a stuck ffmpeg meets this bound.
    """
    return 600.0 + max(0.0, seconds)


def run_ffmpeg(args: Sequence[str], what: str, *, audio_seconds: float = 0.0) -> str:
    """Run ffmpeg with ``args``; return its stderr, or raise AudioError with its last words."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", *args]
    limit = time_bound(audio_seconds)
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=limit,
            process_group=0,  # a signal to narrator's group is for narrator (see encoder)
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"ffmpeg could not {what}: no result after {limit:.0f} s") from exc
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({cmd[0]}): {exc.strerror or exc}") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode:
        raise AudioError(f"ffmpeg could not {what}: {last_words(stderr) or done.returncode}")
    return stderr


def last_words(stderr: str) -> str:
    """What to quote of a failed ffmpeg's stderr: why it failed (a full disk is named in
    an error line, before the progress and "Conversion failed!" that end it) and its
    last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    why = [line for line in lines if any(w in line for w in _DISK_WORDS)] or [
        line for line in lines[:-1] if "rror" in line
    ]
    return " / ".join([*why[-1:], *lines[-1:]])


_DISK_WORDS = ("No space left on device", "Disk quota exceeded")


def _loudnorm(target: float, true_peak: float, lra: float) -> str:
    return f"loudnorm=I={target}:TP={true_peak}:LRA={lra}"


def measure_loudness(
    source: Path, *, target: float = -18.0, true_peak: float = -1.5, lra: float = 11.0
) -> Loudness:
    """The first loudnorm pass: measure ``source`` as a whole."""
    stderr = run_ffmpeg(
        ["-i", str(source), "-af", measure_filter(target, true_peak, lra),
         "-f", "null", "-"],
        f"measure the loudness of {source.name}",
        audio_seconds=longest_seconds(source),
    )  # fmt: skip
    return parse_loudness(stderr, source.name)


def parse_loudness(stderr: str, name: str) -> Loudness:
    """The measurement a first loudnorm pass (``print_format=json``) left in its stderr."""
    found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if found is None:
        raise AudioError(f"ffmpeg measured no loudness for {name}")
    data = json.loads(found.group(0))
    return Loudness(
        integrated=float(data["input_i"]),
        true_peak=float(data["input_tp"]),
        lra=float(data["input_lra"]),
        threshold=float(data["input_thresh"]),
        offset=float(data["target_offset"]),
    )


def measure_filter(target: float, true_peak: float, lra: float = 11.0) -> str:
    """The first pass's filter: measure, print the result as JSON."""
    return _loudnorm(target, true_peak, lra) + ":print_format=json"


def apply_filter(
    measured: Loudness, *, rate: int, target: float, true_peak: float, lra: float = 11.0
) -> str | None:
    """The second pass's filter, or None for a silent book (it cannot be normalised)."""
    if not math.isfinite(measured.integrated) or not math.isfinite(measured.threshold):
        return None
    gain = target - measured.integrated
    if math.isfinite(measured.true_peak) and measured.true_peak + gain <= true_peak:
        # What loudnorm's linear mode does in this case, a single gain, without its
        # round trip through 192 kHz: several times faster over a whole book.
        return f"volume={gain:.2f}dB"
    return (
        f"{_loudnorm(target, true_peak, lra)}:measured_I={measured.integrated}"
        f":measured_TP={measured.true_peak}:measured_LRA={measured.lra}"
        f":measured_thresh={measured.threshold}:offset={measured.offset}:linear=true"
        # loudnorm works at 192 kHz; bring the book back to its own rate
        f",aresample={rate}"
    )


def normalize_wav(
    source: Path,
    output: Path,
    *,
    rate: int,
    width: int,
    target: float = -18.0,
    true_peak: float = -1.5,
    lra: float = 11.0,
) -> Loudness:
    """Write ``source`` to ``output`` (WAV, ``rate`` Hz, ``width`` bytes) at ``target`` LUFS.

    Two passes over the whole file: measure, then apply loudnorm with the measurement
    (linear, a single gain, when the true-peak limit allows). Returns the first pass's
    measurement. A silent book cannot be normalised and is copied unchanged.
    """
    measured = measure_loudness(source, target=target, true_peak=true_peak, lra=lra)
    second = apply_filter(measured, rate=rate, target=target, true_peak=true_peak, lra=lra)
    if second is None:
        shutil.copyfile(source, output)
        return measured
    run_ffmpeg(
        ["-y", "-i", str(source), "-af", second, "-c:a", PCM_CODECS[width], "-rf64", "auto",
         "-f", "wav", str(output)],
        f"normalise the loudness of {source.name}",
        audio_seconds=longest_seconds(source),
    )  # fmt: skip
    return measured


def longest_seconds(path: Path) -> float:
    """The WAV's length, or for one we cannot read (RF64) the most its size can hold."""
    seconds = wav_seconds(path)
    if seconds:
        return seconds
    try:
        return path.stat().st_size / 8000  # 8 kHz 8-bit mono: no WAV is longer per byte
    except OSError:
        return 0.0


def wav_seconds(path: Path) -> float:
    try:
        return read_wav_info(path).seconds
    except (AudioError, OSError):
        return 0.0  # RF64 or unreadable: ffmpeg ends the last chapter at the end anyway
