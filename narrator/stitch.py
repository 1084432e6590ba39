"""Stitch WAV segments, in order and with silent gaps between them, into one WAV file.

Memory stays flat however long the book is: samples go from each segment file to the
output in fixed-size blocks and are never gathered. (Joining with pydub's
``AudioSegment +=`` copies the whole book on every join: 600 ten-second segments took
59 s and 560 MB, against 0.13 s and 14 MB streamed.)

The first segment sets the output format. Segments in that format are copied
byte-for-byte, so their samples reach the output unchanged; any other segment is
converted with pydub, one segment at a time, so memory is bounded by the longest
segment, not by the book.

The output appears atomically: it is written to a temporary file in the same folder,
synced, and only then renamed over ``output``, so a crash never leaves a half-written
audiobook where a finished one is expected.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .audio import WavInfo, read_wav_info
from .errors import AudioError

with warnings.catch_warnings():
    # pydub imports audioop (deprecated since Python 3.11; audioop-lts replaces it on
    # 3.13+), has invalid escapes in its regexes, and warns when ffmpeg is missing. The
    # stitcher only uses its in-memory PCM conversions, which need none of that.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.filterwarnings("ignore", "Couldn't find ffmpeg", RuntimeWarning)
    from pydub import AudioSegment

__all__ = ["Piece", "StitchResult", "stitch_wav"]

_BLOCK = 64 * 1024  # bytes per read and per silence write
_RIFF_LIMIT = 0xFFFF_FFFF  # RIFF sizes are 32-bit; larger files need RF64
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # canonical 44-byte PCM header
_HEADER_AFTER_SIZE = _HEADER.size - 8  # what the RIFF size counts besides the data
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


def stitch_wav(pieces: Iterable[Piece], output: Path) -> StitchResult:
    """Write ``pieces`` one after another, each after its gap of silence, to ``output``.

    The output is a PCM WAV file in the first piece's rate, channels and sample width.
    Every piece is checked before anything is written. ``output``'s folder is created if
    missing, and ``output`` is replaced only once the new file is complete and synced;
    on any error the previous ``output``, if there was one, is left untouched.

    Raises :class:`AudioError` if there are no pieces, if a piece cannot be read or is not
    RIFF/WAVE PCM (the message names the file), or if the result would pass the 4 GiB a
    WAV file can hold. Errors writing ``output`` propagate as :class:`OSError`.
    """
    probed = [(piece, _probe(piece.path)) for piece in pieces]
    if not probed:
        raise AudioError("nothing to stitch")
    target = probed[0][1]
    # Fail before writing gigabytes; the exact size is checked again once it is known.
    _check_size(_estimate_size(probed, target), output)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    # "x" never clobbers a file we did not create. Not mkstemp: its files are private
    # (0600), while open() leaves the audiobook's permissions to the umask as usual.
    fh = tmp.open("xb")
    try:
        with fh:
            frames, starts, durations = _write(fh, probed, target, output)
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


def _check_size(data_size: int, output: Path) -> None:
    if _HEADER_AFTER_SIZE + data_size + (data_size & 1) > _RIFF_LIMIT:
        raise AudioError(
            f"{output.name} would hold {data_size / 2**30:.2f} GiB of samples, more than "
            "the 4 GiB a WAV file can hold; stitch fewer pieces per file "
            "(e.g. one file per chapter) or use a lower sample rate"
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
    out: BinaryIO, probed: Sequence[tuple[Piece, WavInfo]], target: WavInfo, output: Path
) -> tuple[int, list[float], list[float]]:
    """Write the whole WAV file to ``out``; return its frames and each piece's start and length."""
    silence = memoryview((b"\x80" if target.width == 1 else b"\0") * _BLOCK)
    buffer = memoryview(bytearray(_BLOCK))
    out.write(_header(target, 0))  # a placeholder: the sizes are known only at the end
    written = 0  # data bytes so far
    starts: list[float] = []
    durations: list[float] = []
    for index, (piece, info) in enumerate(probed):
        if index:
            gap = _gap_bytes(piece, target)
            for at in range(0, gap, _BLOCK):
                out.write(silence[: min(_BLOCK, gap - at)])
            written += gap
        if _same_format(info, target):
            size = _copy(piece.path, info, out, buffer)
        else:
            converted = _convert(piece.path, info, target)
            out.write(converted)
            size = len(converted)
            del converted  # do not keep one segment alive while copying the next
        starts.append(written // target.frame_size / target.rate)
        durations.append(size // target.frame_size / target.rate)
        written += size
    _check_size(written, output)
    if written & 1:
        out.write(b"\0")  # RIFF chunks are padded to an even length
    out.seek(0)
    out.write(_header(target, written))
    return written // target.frame_size, starts, durations


def _open(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as exc:
        raise AudioError(f"cannot read segment {path}: {exc.strerror or exc}") from exc


def _copy(path: Path, info: WavInfo, out: BinaryIO, buffer: memoryview) -> int:
    """Copy ``path``'s samples to ``out`` block by block; return the bytes copied."""
    remaining = info.data_size
    with _open(path) as src:
        src.seek(info.data_offset)
        while remaining:
            n = src.readinto(buffer[: min(remaining, len(buffer))])
            if not n:
                raise AudioError(f"{path.name} got shorter while it was being stitched")
            out.write(buffer[:n])
            remaining -= n
    return info.data_size


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
