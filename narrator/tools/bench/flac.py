"""Issue 12's question about the cache: store segments as FLAC, or keep WAV?

FLAC pays if its CPU cost is small next to what a segment costs anyway. One realistic
segment (about 40 s of speech, eSpeak NG resampled to the service's 24 kHz mono 16-bit,
since the emulator's tone compresses like no speech does) is encoded to FLAC and decoded
back, checked sample-exact, and timed in CPU seconds two ways: an ffmpeg process per
segment (what pydub does; ffmpeg is there wherever narrator runs) and, when the
``soundfile`` package happens to be installed, libsndfile's FLAC in this process (it is
not a narrator dependency). Each is the best of a few tries. The row sets the cheaper
against the client's whole CPU budget (2 s per 1,000 chunks) and against the segment's
download at a typical speed.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...book.encode import ffmpeg_exe
from ...util.wav import parse_wav
from ..emulator.audio import SAMPLE_RATE, espeak_wav
from . import texts
from .harness import BenchError, Progress, Row, Sizes, Workdir

__all__ = ["flac"]

SPEECH_CHARS = 700  # eSpeak reads this in about 40 s, a full chunk of the real service
TRIES = 5
BUDGET = 0.002  # the client's CPU per chunk, all of it (issue 12: 2 s per 1,000)
DOWNLOAD_BITS_PER_SECOND = 50e6  # a typical home line, for the download's time


def _speech() -> bytes:
    """About 40 s of English prose, read by eSpeak NG at 24 kHz: one realistic segment."""
    prose = " ".join(
        p for p in texts.english(4 * SPEECH_CHARS, seed=7).split("\n\n") if p[0] != "#"
    )
    return espeak_wav("Cherry", prose[: prose.rfind(" ", 0, SPEECH_CHARS)])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ffmpeg(*args: str) -> float:
    """Run ffmpeg; the CPU seconds it took."""
    before = _children_cpu()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)
    return _children_cpu() - before


def _best(measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(TRIES))


def _by_ffmpeg(folder: Path, wav: bytes) -> dict[str, float]:
    """CPU seconds to encode and decode by an ffmpeg process each, and the FLAC's size."""
    source, packed, back = folder / "segment.wav", folder / "segment.flac", folder / "back.wav"
    source.write_bytes(wav)
    encode = _best(lambda: _ffmpeg("-i", str(source), "-c:a", "flac", str(packed)))
    decode = _best(lambda: _ffmpeg("-i", str(packed), "-f", "wav", str(back)))
    start = _best(lambda: _ffmpeg("-version"))  # what any ffmpeg process costs
    if _pcm(back.read_bytes()) != _pcm(wav):
        raise BenchError("ffmpeg's FLAC did not give the segment back sample for sample")
    return {"encode": encode, "decode": decode, "process": start, "bytes": packed.stat().st_size}


def _by_soundfile(wav: bytes) -> dict[str, float] | None:
    """The same with libsndfile in this process; None when soundfile is not installed."""
    try:
        soundfile: Any = importlib.import_module("soundfile")
        numpy: Any = importlib.import_module("numpy")
    except ImportError:
        return None
    samples = numpy.frombuffer(_pcm(wav), dtype="<i2")
    packed = io.BytesIO()

    def encode() -> float:
        began = time.process_time()
        packed.seek(0)
        packed.truncate()
        soundfile.write(packed, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return time.process_time() - began

    def decode() -> float:
        began = time.process_time()
        back, _ = soundfile.read(io.BytesIO(packed.getvalue()), dtype="int16")
        seconds = time.process_time() - began
        if not numpy.array_equal(back, samples):
            raise BenchError("soundfile's FLAC did not give the segment back sample for sample")
        return seconds

    return {"encode": _best(encode), "decode": _best(decode), "bytes": len(packed.getvalue())}


def _pcm(wav: bytes) -> bytes:
    info = parse_wav(wav, len(wav))
    return wav[info.data_offset : info.data_offset + info.data_size]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def flac(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """FLAC for one 40 s speech segment: CPU to encode and decode, size, against WAV."""
    del sizes  # one segment whatever the size: it is what every chunk would pay
    progress("flac: one 40 s speech segment to FLAC and back")
    wav = await asyncio.to_thread(_speech)
    seconds = len(_pcm(wav)) / 2 / SAMPLE_RATE
    folder = work.path("flac")
    folder.mkdir()
    try:
        by_ffmpeg = await asyncio.to_thread(_by_ffmpeg, folder, wav)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    by_soundfile = await asyncio.to_thread(_by_soundfile, wav)
    download = len(wav) * 8 / DOWNLOAD_BITS_PER_SECOND
    ffmpeg_cpu = by_ffmpeg["encode"] + by_ffmpeg["decode"]
    cpu, how = ffmpeg_cpu, "an ffmpeg process each way"
    figure = (
        f"ffmpeg: {_ms(by_ffmpeg['encode'])} + {_ms(by_ffmpeg['decode'])} "
        f"(a bare ffmpeg process: {_ms(by_ffmpeg['process'])})"
    )
    if by_soundfile is None:
        figure += "; soundfile (libsndfile) not installed, not measured"
    else:
        cpu, how = by_soundfile["encode"] + by_soundfile["decode"], "soundfile, in process"
        figure += f"; soundfile: {_ms(by_soundfile['encode'])} + {_ms(by_soundfile['decode'])}"
    size = by_ffmpeg["bytes"] / len(wav)
    ratio = cpu / BUDGET
    return [
        Row(
            f"FLAC segments: CPU to encode + decode one {seconds:.0f} s speech segment "
            f"(eSpeak, {SAMPLE_RATE} Hz mono 16-bit), best of {TRIES}; FLAC is "
            f"{size:.0%} of the WAV's {len(wav) / 1e6:.2f} MB",
            figure,
            f"client CPU budget {_ms(BUDGET)} per chunk; the WAV's download at "
            f"{DOWNLOAD_BITS_PER_SECOND / 1e6:g} Mbit/s: {_ms(download)} "
            f"(cheapest FLAC, {how}: {cpu / download:.0%} of it)",
            ratio,
            f"{ratio:.1f}x the budget",
            f"< {_ms(BUDGET)} a chunk, else keep WAV",
            cpu < BUDGET,
            {
                "segment_seconds": seconds,
                "wav_bytes": len(wav),
                "ffmpeg": by_ffmpeg,
                "soundfile": by_soundfile,
                "cpu_seconds": cpu,
                "cheapest": how,
                "budget_seconds": BUDGET,
                "download_seconds": download,
                "download_bits_per_second": DOWNLOAD_BITS_PER_SECOND,
                "flac_share_of_wav": size,
            },
        )
    ]
