"""Small WAV helpers: read a RIFF/WAVE PCM header, check it, and build WAV bytes.

Written by hand rather than with :mod:`wave` because the check must be strict about
truncation (the data chunk must be as long as its header says) and must accept
``WAVE_FORMAT_EXTENSIBLE`` PCM, which :mod:`wave` rejects before Python 3.12.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioError

__all__ = ["HEADER_PROBE", "WavInfo", "parse_wav", "read_wav_info", "tone_pcm", "wav_bytes"]


_PCM = 1
_EXTENSIBLE = 0xFFFE
# Streaming encoders write 0 or 0xFFFFFFFF when they do not know the length yet.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class WavInfo:
    """Where the PCM samples of a WAV file are and what they look like."""

    rate: int
    channels: int
    width: int  # bytes per sample
    data_offset: int
    data_size: int
    # As the header says them; a sane file has rate * block_align and channels * width.
    byte_rate: int = 0
    block_align: int = 0

    @property
    def frame_size(self) -> int:
        return self.channels * self.width

    @property
    def frames(self) -> int:
        return self.data_size // self.frame_size

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def parse_wav(head: bytes, total_size: int, *, name: str = "audio") -> WavInfo:
    """Parse the header in ``head`` (the file's first bytes) of a file of ``total_size`` bytes.

    Raises :class:`AudioError` when it is not RIFF/WAVE PCM or is shorter than it says.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{name} is not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    sizes = (0, 0)
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise AudioError(f"{name} has a short fmt chunk")
            tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", head, body)
            sizes = (byte_rate, align)
            if tag == _EXTENSIBLE and size >= 40 and body + 26 <= len(head):
                tag = struct.unpack_from("<H", head, body + 24)[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError(f"{name} has its data before its fmt chunk")
            tag, channels, rate, bits = fmt
            if tag != _PCM:
                raise AudioError(f"{name} is not PCM (format tag {tag:#x})")
            if channels < 1 or rate < 1 or bits not in (8, 16, 24, 32):
                raise AudioError(
                    f"{name} has an unusable format ({channels} ch, {rate} Hz, {bits} bit)"
                )
            available = total_size - body
            if size in _UNKNOWN_SIZES:
                size = available
            elif size > available:
                raise AudioError(f"{name} is truncated: {available} of {size} data bytes")
            width = bits // 8
            size -= size % (channels * width)
            return WavInfo(rate, channels, width, body, size, *sizes)
        pos = body + size + (size & 1)
    raise AudioError(f"{name} has no data chunk in its first {len(head)} bytes")


HEADER_PROBE = 4096  # bytes read to find the data chunk; real headers are far shorter


def read_wav_info(path: Path) -> WavInfo:
    """Check the WAV file at ``path`` and say where its samples are."""
    with path.open("rb") as fh:
        head = fh.read(HEADER_PROBE)
    return parse_wav(head, path.stat().st_size, name=path.name)


def wav_bytes(pcm: bytes, rate: int, *, channels: int = 1, width: int = 2) -> bytes:
    """A complete WAV file holding ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def tone_pcm(seconds: float, rate: int, *, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """16-bit mono sine samples: a cheap stand-in voice for tests and benchmarks."""
    n = int(seconds * rate)
    step = 2 * math.pi * freq / rate
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(i * step)) for i in range(n)))
