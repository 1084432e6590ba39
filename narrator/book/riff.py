"""RIFF/WAVE and RF64 (EBU Tech 3306) headers for the stitched book: canonical 44-byte
PCM headers, and RF64 with a ds64 chunk once the samples pass the 4 GiB RIFF limit."""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import AudioError
from ..util.wav import WavInfo

__all__: list[str] = []


_RIFF_LIMIT = 0xFFFF_FFFF  # RIFF sizes are 32-bit; larger files need RF64
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # canonical 44-byte PCM header
_HEADER_AFTER_SIZE = _HEADER.size - 8  # what the RIFF size counts besides the data
# RF64: the RIFF header with a ds64 chunk (64-bit RIFF size, data size and frame count,
# no table) before fmt; the 32-bit sizes say 0xFFFFFFFF.
RF64_HEADER = struct.Struct("<4sI4s4sIQQQI4sIHHIIHH4sI")
_PCM = 1


def _fmt_chunk(fmt: WavInfo) -> tuple[bytes | int, ...]:
    """The ``fmt `` chunk's fields (PCM), the same in both layouts."""
    return (b"fmt ", 16, _PCM, fmt.channels, fmt.rate, fmt.rate * fmt.frame_size,
            fmt.frame_size, fmt.width * 8)  # fmt: skip


def _rf64_size(data_size: int, extra: int) -> int:
    """What the RIFF size counts in a file with the RF64-long header: all but 8 bytes."""
    return RF64_HEADER.size - 8 + data_size + (data_size & 1) + extra


def too_big_for_riff(data_size: int) -> bool:
    return _HEADER_AFTER_SIZE + data_size + (data_size & 1) > _RIFF_LIMIT


def check_size(data_size: int, output: Path) -> None:
    if too_big_for_riff(data_size):
        raise AudioError(
            f"{output.name} came out at {data_size / 2**30:.2f} GiB of samples, more than "
            "the 4 GiB a RIFF WAV file can hold"
        )


def rf64_header(fmt: WavInfo, data_size: int, extra: int = 0) -> bytes:
    """The RF64 header; ``extra``: bytes of chunks after the data (a LIST, say)."""
    return RF64_HEADER.pack(
        b"RF64",
        0xFFFF_FFFF,
        b"WAVE",
        b"ds64",
        28,
        _rf64_size(data_size, extra),
        data_size,
        data_size // fmt.frame_size,
        0,
        *_fmt_chunk(fmt),
        b"data",
        0xFFFF_FFFF,
    )


def junk_header(fmt: WavInfo, data_size: int, extra: int = 0) -> bytes:
    """A RIFF header as long as the RF64 one, its ds64 room kept as a JUNK chunk: written
    first when the book's size is not known yet (EBU Tech 3306), so either fits at the end."""
    header = bytearray(rf64_header(fmt, data_size, extra))
    header[0:8] = b"RIFF" + _rf64_size(data_size, extra).to_bytes(4, "little")
    header[12:48] = b"JUNK" + (28).to_bytes(4, "little") + bytes(28)
    header[-4:] = data_size.to_bytes(4, "little")
    return bytes(header)


def junk_fits(data_size: int, extra: int = 0) -> bool:
    return _rf64_size(data_size, extra) <= _RIFF_LIMIT


def riff_header(fmt: WavInfo, data_size: int, extra: int = 0) -> bytes:
    return _HEADER.pack(
        b"RIFF",
        _HEADER_AFTER_SIZE + data_size + (data_size & 1) + extra,
        b"WAVE",
        *_fmt_chunk(fmt),
        b"data",
        data_size,
    )
