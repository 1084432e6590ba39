"""A piece's samples on their way into the book: read from its file as they are, or
converted (pydub) to the book's format; with ``clean``, trimmed of leading and trailing
silence and faded at both edges so no join clicks."""

from __future__ import annotations

import abc
import array
import io
import sys
import warnings
from pathlib import Path
from typing import Protocol

from ..errors import AudioError
from ..util.wav import WavInfo

with warnings.catch_warnings():
    # pydub imports audioop (deprecated since Python 3.11; audioop-lts replaces it on
    # 3.13+), has invalid escapes in its regexes, and warns when ffmpeg is missing. The
    # stitcher only uses its in-memory PCM conversions, which need none of that.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.filterwarnings("ignore", "Couldn't find ffmpeg", RuntimeWarning)
    from pydub import AudioSegment

__all__ = ["FADE_MS", "KEEP_MS", "SILENCE_DBFS"]


SILENCE_DBFS = -50.0  # quieter than this (peak) counts as silence when trimming
KEEP_MS = 40  # silence kept before and after the speech, so soft onsets are never cut
FADE_MS = 5  # fade in and out at every cut; short enough to be inaudible on speech

# WAV stores 8-bit samples unsigned (silence is 0x80); audioop, under pydub, treats
# them as signed. Adding 128 modulo 256 maps one onto the other, both ways.
_FLIP_SIGN = bytes((b + 128) & 0xFF for b in range(256))


class PieceSource(abc.ABC):
    """A piece's samples, in the output's format, read by byte range."""

    name: str
    size: int

    @abc.abstractmethod
    def read(self, at: int, size: int) -> bytes:
        """Up to ``size`` bytes of samples from byte ``at``."""

    def readinto(self, at: int, buffer: memoryview) -> int:
        data = self.read(at, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __enter__(self) -> PieceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FileSource(PieceSource):
    def __init__(self, path: Path, info: WavInfo) -> None:
        self.name = path.name
        self.size = info.data_size
        self._offset = info.data_offset
        self._fh = _open(path)

    def _seek(self, at: int) -> None:
        self._fh.seek(self._offset + at)

    def read(self, at: int, size: int) -> bytes:
        self._seek(at)
        data = self._fh.read(size)
        if len(data) < size:
            raise AudioError(f"{self.name} got shorter while it was being stitched")
        return data

    def readinto(self, at: int, buffer: memoryview) -> int:
        self._seek(at)
        n = self._fh.readinto(buffer)
        if n < len(buffer):
            raise AudioError(f"{self.name} got shorter while it was being stitched")
        return n

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


class BytesSource(PieceSource):
    def __init__(self, data: bytes) -> None:
        self.name = "converted segment"
        self.size = len(data)
        self._data = memoryview(data)

    def read(self, at: int, size: int) -> bytes:
        return bytes(self._data[at : at + size])


class Out(Protocol):
    """Where samples go: a file, an encoder's pipe, or several of them (only ``write``)."""

    def write(self, data: bytes | memoryview, /) -> object: ...


def piece_bounds(
    source: PieceSource, fmt: WavInfo, buffer: memoryview, *, clean: bool
) -> tuple[int, int]:
    """The frames of ``source`` to write: all of them, or with ``clean`` only the audible ones."""
    return _audible(source, fmt, buffer) if clean else (0, source.size // fmt.frame_size)


def emit(
    source: PieceSource,
    fmt: WavInfo,
    out: Out,
    buffer: memoryview,
    span: tuple[int, int],
    *,
    clean: bool,
) -> int:
    """Write frames ``span`` of ``source`` to ``out`` (faded if ``clean``); return bytes."""
    frame = fmt.frame_size
    first, end = span
    fade = min((fmt.rate * FADE_MS + 500) // 1000, (end - first) // 2) if clean else 0
    if fade:
        out.write(_fade(source.read(first * frame, fade * frame), fmt, rising=True))
    at, stop = (first + fade) * frame, (end - fade) * frame
    while at < stop:
        n = source.readinto(at, buffer[: min(len(buffer), stop - at)])
        out.write(buffer[:n])
        at += n
    if fade:
        out.write(_fade(source.read(stop, fade * frame), fmt, rising=False))
    return (end - first) * frame


def _samples(data: bytes, width: int) -> list[int]:
    """Signed sample values of little-endian PCM (8-bit WAV samples are unsigned)."""
    if width == 1:
        return [b - 128 for b in data]
    if width == 3:
        return [
            int.from_bytes(data[i : i + 3], "little", signed=True) for i in range(0, len(data), 3)
        ]
    values = array.array("h" if width == 2 else "i", data)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _pack(values: list[int], width: int) -> bytes:
    if width == 1:
        return bytes(v + 128 for v in values)
    if width == 3:
        return b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    packed = array.array("h" if width == 2 else "i", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _loud_frame(data: bytes, fmt: WavInfo, threshold: int, *, last: bool) -> int | None:
    """Index of the first (or ``last``) frame in ``data`` with a sample at ``threshold``+."""
    values = _samples(data, fmt.width)
    if not values or (max(values) < threshold and -min(values) < threshold):
        return None  # the common case, a quiet block, is settled at C speed
    order = range(len(values) - 1, -1, -1) if last else range(len(values))
    for i in order:
        if abs(values[i]) >= threshold:
            return i // fmt.channels
    return None


def _audible(source: PieceSource, fmt: WavInfo, buffer: memoryview) -> tuple[int, int]:
    """The frames to keep: from just before the first loud sample to just after the last.

    A piece with no loud sample at all is kept whole: it may be a deliberate pause.
    """
    frame, frames = fmt.frame_size, source.size // fmt.frame_size
    threshold = max(1, round(2 ** (8 * fmt.width - 1) * 10 ** (SILENCE_DBFS / 20)))
    keep = (fmt.rate * KEEP_MS + 500) // 1000
    step = len(buffer) // frame
    first = None
    for block in range(0, frames, step):
        found = _loud_frame(
            source.read(block * frame, min(step, frames - block) * frame),
            fmt,
            threshold,
            last=False,
        )
        if found is not None:
            first = block + found
            break
    if first is None:
        return 0, frames
    last = first
    for block_end in range(frames, first, -step):
        block = max(first, block_end - step)
        found = _loud_frame(
            source.read(block * frame, (block_end - block) * frame), fmt, threshold, last=True
        )
        if found is not None:
            last = block + found
            break
    return max(0, first - keep), min(frames, last + 1 + keep)


def _fade(data: bytes, fmt: WavInfo, *, rising: bool) -> bytes:
    """``data`` with a linear fade in (``rising``) or out, ending or starting at zero."""
    values = _samples(data, fmt.width)
    frames = len(values) // fmt.channels
    for i in range(frames):
        k = i if rising else frames - 1 - i
        for c in range(fmt.channels):
            j = i * fmt.channels + c
            values[j] = values[j] * k // frames
    return _pack(values, fmt.width)


def _open(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as exc:
        raise AudioError(f"cannot read segment {path}: {exc.strerror or exc}") from exc


def convert_piece(path: Path, info: WavInfo, target: WavInfo) -> bytes:
    """``path``'s samples in ``target``'s rate, channels and width, converted by pydub."""
    if not info.data_size:
        return b""
    with _open(path) as src:
        src.seek(info.data_offset)
        data = src.read(info.data_size)
    if len(data) < info.data_size:
        raise AudioError(f"{path.name} got shorter while it was being stitched")
    # pydub turns any 24-bit audio into 32-bit, with a slow loop, even audio it was asked
    # to make 24-bit; so 24-bit samples go in and come out as 32-bit, converted here.
    in_width = 4 if info.width == 3 else info.width
    out_width = 4 if target.width == 3 else target.width
    if info.width == 1:
        data = data.translate(_FLIP_SIGN)
    elif info.width == 3:
        data = _widen_24(data)
    # Built from the raw samples rather than with AudioSegment.from_wav: read_wav_info has
    # already found them, and pydub's own parser misreads headers it accepts (a data
    # size left at 0 by a streaming encoder, odd-sized chunks before the data).
    seg = AudioSegment(
        data=data, sample_width=in_width, frame_rate=info.rate, channels=info.channels
    )
    del data  # so each conversion step below can free the one before
    # Widen first, narrow last, so mixing and resampling run at the better precision.
    seg = seg.set_sample_width(max(in_width, out_width))
    if seg.channels != target.channels:
        if seg.channels > 1 and target.channels > 1:
            seg = seg.set_channels(1)  # pydub only converts to or from mono
        seg = seg.set_channels(target.channels)
    seg = seg.set_frame_rate(target.rate).set_sample_width(out_width)
    pcm: bytes = seg.raw_data
    if target.width == 1:
        return pcm.translate(_FLIP_SIGN)
    if target.width == 3:
        return _narrow_32(pcm)
    return pcm


def _widen_24(data: bytes) -> bytes:
    """24-bit little-endian samples as 32-bit ones, scaled by 256 (exact)."""
    wide = bytearray(len(data) // 3 * 4)
    for byte in range(3):
        wide[byte + 1 :: 4] = data[byte::3]
    return bytes(wide)


def _narrow_32(data: bytes) -> bytes:
    """32-bit little-endian samples as 24-bit ones: the low byte dropped, like audioop."""
    narrow = bytearray(data)
    del narrow[::4]
    return bytes(narrow)
