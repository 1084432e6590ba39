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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import AudioError
from ..synth.sanity import MAX_GAP_MS, check_format
from ..util.atomic import atomic_path
from ..util.wav import WavInfo, read_wav_info
from .joins import (
    FADE_MS,
    KEEP_MS,
    SILENCE_DBFS,
    _BytesSource,
    _convert,
    _FileSource,
    _put,
    _Source,
)
from .riff import _check_size, _header, _rf64_header, _too_big_for_riff

__all__ = ["FADE_MS", "KEEP_MS", "SILENCE_DBFS", "Piece", "StitchResult", "stitch_wav"]

_BLOCK = 64 * 1024  # bytes per read and per silence write


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
    # "x" never clobbers a file we did not create. Not mkstemp: its files are private
    # (0600), while open() leaves the audiobook's permissions to the umask as usual.
    with atomic_path(output) as tmp, tmp.open("xb") as fh:
        frames, starts, durations = _write(fh, probed, target, output, rf64=rf64, clean=clean)
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
