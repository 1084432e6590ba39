"""Stitch WAV segments, in order and with silent gaps between them, into one WAV file.

Memory stays flat however long the book is: samples go from each segment file to the
output in fixed-size blocks and are never gathered. (Joining with pydub's
``AudioSegment +=`` copies the whole book on every join: 600 ten-second segments took
59 s and 560 MB, against 0.13 s and 14 MB streamed.)

The first segment sets the output format. Segments in that format are copied
byte-for-byte, so their samples reach the output unchanged; any other segment is
converted with pydub, one segment at a time, so memory is bounded by the longest
segment, not by the book.

With ``clean=True`` every join is made inaudible: each segment's own leading and
trailing silence is trimmed (conservatively, see :data:`SILENCE_DBFS` and
:data:`KEEP_MS`) and its first and last :data:`FADE_MS` milliseconds are faded, so no cut
jumps from a sample to silence with a click. Without it (the default) segments are
copied sample-exact.

A book over the 4 GiB a RIFF file can hold is written as RF64 (EBU Tech 3306), which
ffmpeg and most audio software read; it is never truncated.

Every piece is checked first (:mod:`narrator.synth.sanity`): a header no speech service
sends, a piece longer than its ``max_seconds`` or a gap over :data:`MAX_GAP_MS` is an
:class:`AudioError` before a byte is written, so the output is bounded by the text.

The output appears atomically: it is written to a temporary file in the same folder,
synced, and only then renamed over ``output``, so a crash never leaves a half-written
audiobook where a finished one is expected.
"""

from __future__ import annotations

import abc
import array
import io
import os
import secrets
import struct
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import AudioError
from ..synth.sanity import MAX_GAP_MS, check_format
from ..util.wav import WavInfo, read_wav_info

with warnings.catch_warnings():
    # pydub imports audioop (deprecated since Python 3.11; audioop-lts replaces it on
    # 3.13+), has invalid escapes in its regexes, and warns when ffmpeg is missing. The
    # stitcher only uses its in-memory PCM conversions, which need none of that.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.filterwarnings("ignore", "Couldn't find ffmpeg", RuntimeWarning)
    from pydub import AudioSegment

__all__ = ["FADE_MS", "KEEP_MS", "SILENCE_DBFS", "Piece", "StitchResult", "stitch_wav"]

SILENCE_DBFS = -50.0  # quieter than this (peak) counts as silence when trimming
KEEP_MS = 40  # silence kept before and after the speech, so soft onsets are never cut
FADE_MS = 5  # fade in and out at every cut; short enough to be inaudible on speech

_BLOCK = 64 * 1024  # bytes per read and per silence write
_RIFF_LIMIT = 0xFFFF_FFFF  # RIFF sizes are 32-bit; larger files need RF64
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # canonical 44-byte PCM header
_HEADER_AFTER_SIZE = _HEADER.size - 8  # what the RIFF size counts besides the data
# RF64: the RIFF header with a ds64 chunk (64-bit RIFF size, data size and frame count,
# no table) before fmt; the 32-bit sizes say 0xFFFFFFFF.
_RF64_HEADER = struct.Struct("<4sI4s4sIQQQI4sIHHIIHH4sI")
_PCM = 1
# WAV stores 8-bit samples unsigned (silence is 0x80); audioop, under pydub, treats
# them as signed. Adding 128 modulo 256 maps one onto the other, both ways.
_FLIP_SIGN = bytes((b + 128) & 0xFF for b in range(256))


@dataclass(frozen=True, slots=True)
class Piece:
    """One WAV segment to stitch and the silence to put before it.

    ``gap_before_ms`` is ignored for the first piece: a book does not start with silence
    just because its first chunk asked for a pause.
    """

    path: Path  # a RIFF/WAVE PCM file
    gap_before_ms: int
    # The longest this piece's audio may be (see sanity.max_seconds); None: unbounded.
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.gap_before_ms < 0:
            raise ValueError(f"gap_before_ms must be >= 0, not {self.gap_before_ms} ({self.path})")


@dataclass(frozen=True, slots=True)
class StitchResult:
    """The stitched WAV file, its format, and where each piece's audio landed in it."""

    path: Path
    rate: int
    channels: int
    width: int  # bytes per sample
    frames: int
    starts: tuple[float, ...]  # seconds from the start of the output to each piece's audio
    durations: tuple[float, ...]  # seconds of each piece's audio, gaps excluded

    @property
    def seconds(self) -> float:
        """Length of the whole output in seconds, gaps included."""
        return self.frames / self.rate


def stitch_wav(pieces: Iterable[Piece], output: Path, *, clean: bool = False) -> StitchResult:
    """Write ``pieces`` one after another, each after its gap of silence, to ``output``.

    The output is a PCM WAV file in the first piece's rate, channels and sample width;
    RF64 when it holds more than 4 GiB. ``clean`` trims each piece's own leading and
    trailing silence and fades its edges (see the module docstring).
    Every piece is checked before anything is written. ``output``'s folder is created if
    missing, and ``output`` is replaced only once the new file is complete and synced;
    on any error the previous ``output``, if there was one, is left untouched.

    Raises :class:`AudioError` if there are no pieces, or if a piece cannot be read or is
    not RIFF/WAVE PCM (the message names the file). Errors writing ``output`` propagate
    as :class:`OSError`.
    """
    probed = [(piece, _probe(piece.path)) for piece in pieces]
    if not probed:
        raise AudioError("nothing to stitch")
    for piece, info in probed:
        _check_piece(piece, info)
    target = probed[0][1]
    # The estimate is an upper bound (trimming only shortens), so the layout is chosen
    # before writing; a frame per piece covers resampling's rounding.
    rf64 = _too_big_for_riff(_estimate_size(probed, target) + len(probed) * target.frame_size)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    # "x" never clobbers a file we did not create. Not mkstemp: its files are private
    # (0600), while open() leaves the audiobook's permissions to the umask as usual.
    fh = tmp.open("xb")
    try:
        with fh:
            frames, starts, durations = _write(fh, probed, target, output, rf64=rf64, clean=clean)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(output.parent)
    return StitchResult(
        path=output,
        rate=target.rate,
        channels=target.channels,
        width=target.width,
        frames=frames,
        starts=tuple(starts),
        durations=tuple(durations),
    )


def _probe(path: Path) -> WavInfo:
    """Where ``path``'s samples are, with unreadable files reported as AudioError."""
    try:
        return read_wav_info(path)
    except OSError as exc:
        raise AudioError(f"cannot read segment {path}: {exc.strerror or exc}") from exc


def _check_piece(piece: Piece, info: WavInfo) -> None:
    """Refuse, before writing anything, a piece or gap that would make a book far longer
    than its text: a hostile header must not fill the disk."""
    check_format(info, name=f"segment {piece.path.name}")
    if piece.max_seconds is not None and info.seconds > piece.max_seconds:
        raise AudioError(
            f"segment {piece.path.name} lasts {info.seconds:,.0f} s, more than its text "
            f"allows ({piece.max_seconds:,.0f} s)"
        )
    if piece.gap_before_ms > MAX_GAP_MS:
        raise AudioError(f"a gap of {piece.gap_before_ms:,} ms is over the {MAX_GAP_MS:,} ms cap")


def _allowed_bytes(piece: Piece, target: WavInfo) -> int | None:
    """The most bytes a piece may take in the output, converted or not."""
    if piece.max_seconds is None:
        return None
    return (int(piece.max_seconds * target.rate) + 1) * target.frame_size


def _same_format(a: WavInfo, b: WavInfo) -> bool:
    return (a.rate, a.channels, a.width) == (b.rate, b.channels, b.width)


def _gap_bytes(piece: Piece, target: WavInfo) -> int:
    frames = (piece.gap_before_ms * target.rate + 500) // 1000  # rounded to the nearest frame
    return frames * target.frame_size


def _estimate_size(probed: Sequence[tuple[Piece, WavInfo]], target: WavInfo) -> int:
    """Data bytes of the output, exact unless pieces are resampled."""
    size = sum(_gap_bytes(piece, target) for piece, _ in probed[1:])
    for _, info in probed:
        if _same_format(info, target):
            size += info.data_size
        else:
            size += -(-info.frames * target.rate // info.rate) * target.frame_size
    return size


def _too_big_for_riff(data_size: int) -> bool:
    return _HEADER_AFTER_SIZE + data_size + (data_size & 1) > _RIFF_LIMIT


def _check_size(data_size: int, output: Path) -> None:
    if _too_big_for_riff(data_size):
        raise AudioError(
            f"{output.name} came out at {data_size / 2**30:.2f} GiB of samples, more than "
            "the 4 GiB a RIFF WAV file can hold"
        )


def _rf64_header(fmt: WavInfo, data_size: int) -> bytes:
    pad = data_size & 1
    return _RF64_HEADER.pack(
        b"RF64",
        0xFFFF_FFFF,
        b"WAVE",
        b"ds64",
        28,
        _RF64_HEADER.size - 8 + data_size + pad,
        data_size,
        data_size // fmt.frame_size,
        0,
        b"fmt ",
        16,
        _PCM,
        fmt.channels,
        fmt.rate,
        fmt.rate * fmt.frame_size,
        fmt.frame_size,
        fmt.width * 8,
        b"data",
        0xFFFF_FFFF,
    )


def _header(fmt: WavInfo, data_size: int) -> bytes:
    return _HEADER.pack(
        b"RIFF",
        _HEADER_AFTER_SIZE + data_size + (data_size & 1),
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        fmt.channels,
        fmt.rate,
        fmt.rate * fmt.frame_size,
        fmt.frame_size,
        fmt.width * 8,
        b"data",
        data_size,
    )


def _write(
    out: BinaryIO,
    probed: Sequence[tuple[Piece, WavInfo]],
    target: WavInfo,
    output: Path,
    *,
    rf64: bool,
    clean: bool,
) -> tuple[int, list[float], list[float]]:
    """Write the whole WAV file to ``out``; return its frames and each piece's start and length."""
    header = _rf64_header if rf64 else _header
    silence = memoryview((b"\x80" if target.width == 1 else b"\0") * _BLOCK)
    buffer = memoryview(bytearray(_BLOCK - _BLOCK % target.frame_size))
    out.write(header(target, 0))  # a placeholder: the sizes are known only at the end
    written = 0  # data bytes so far
    starts: list[float] = []
    durations: list[float] = []
    for index, (piece, info) in enumerate(probed):
        if index:
            gap = _gap_bytes(piece, target)
            for at in range(0, gap, _BLOCK):
                out.write(silence[: min(_BLOCK, gap - at)])
            written += gap
        source: _Source
        if _same_format(info, target):
            source = _FileSource(piece.path, info)
        else:
            source = _BytesSource(_convert(piece.path, info, target))
        allowed = _allowed_bytes(piece, target)
        if allowed is not None and source.size > allowed:  # a conversion that grew too much
            raise AudioError(f"segment {piece.path.name} came out longer than its text allows")
        with source:
            size = _put(source, target, out, buffer, clean=clean)
        del source  # do not keep one converted segment alive while copying the next
        starts.append(written // target.frame_size / target.rate)
        durations.append(size // target.frame_size / target.rate)
        written += size
    if not rf64:
        _check_size(written, output)
    if written & 1:
        out.write(b"\0")  # RIFF chunks are padded to an even length
    out.seek(0)
    out.write(header(target, written))
    return written // target.frame_size, starts, durations


class _Source(abc.ABC):
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

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _FileSource(_Source):
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


class _BytesSource(_Source):
    def __init__(self, data: bytes) -> None:
        self.name = "converted segment"
        self.size = len(data)
        self._data = memoryview(data)

    def read(self, at: int, size: int) -> bytes:
        return bytes(self._data[at : at + size])


def _put(source: _Source, fmt: WavInfo, out: BinaryIO, buffer: memoryview, *, clean: bool) -> int:
    """Write ``source``'s samples to ``out`` (trimmed and faded if ``clean``); return bytes."""
    frame = fmt.frame_size
    first, end = _audible(source, fmt, buffer) if clean else (0, source.size // frame)
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


def _audible(source: _Source, fmt: WavInfo, buffer: memoryview) -> tuple[int, int]:
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


def _convert(path: Path, info: WavInfo, target: WavInfo) -> bytes:
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


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only: Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
