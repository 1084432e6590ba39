"""Pieces, one after another, into one stream of PCM samples in the first piece's format.

The one writer behind both the batch stitcher (:func:`narrator.book.stitch.stitch_wav`)
and the streaming book (:mod:`narrator.book.stream`): every piece is checked
(:mod:`narrator.synth.sanity`: a header no speech service sends, a piece longer than its
``max_seconds``, a gap over :data:`MAX_GAP_MS`), converted when its format differs from
the first piece's, trimmed and faded with ``clean``, and copied in fixed-size blocks so
memory stays flat however long the book is.

A piece is first made :meth:`Joiner.ready` (checked, converted, its audible span found:
its length is then known) and only later written; the streaming book holds one ready
piece back, to know where a part may end before writing past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioError
from ..synth.sanity import MAX_GAP_MS, check_format
from ..util.wav import WavInfo, read_wav_info
from .joins import BytesSource, FileSource, Out, PieceSource, convert_piece, emit, piece_bounds

__all__: list[str] = []

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
class Ready:
    """A piece checked and opened, its samples in the output's format, its span known."""

    piece: Piece
    source: PieceSource
    span: tuple[int, int]  # the frames of ``source`` that go into the book
    size: int  # bytes it will take in the output
    gap: int  # bytes of silence before it (0 for the first piece)

    def close(self) -> None:
        """Let go of the piece without writing it."""
        self.source.__exit__(None, None, None)


def probe(path: Path) -> WavInfo:
    """Where ``path``'s samples are, with unreadable files reported as AudioError."""
    try:
        return read_wav_info(path)
    except OSError as exc:
        raise AudioError(f"cannot read segment {path}: {exc.strerror or exc}") from exc


def check_piece(piece: Piece, info: WavInfo) -> None:
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


def same_format(a: WavInfo, b: WavInfo) -> bool:
    return (a.rate, a.channels, a.width) == (b.rate, b.channels, b.width)


def gap_bytes(piece: Piece, target: WavInfo) -> int:
    frames = (piece.gap_before_ms * target.rate + 500) // 1000  # rounded to the nearest frame
    return frames * target.frame_size


class Joiner:
    """Turns pieces, in order, into one PCM stream (see the module docstring).

    ``target`` is the output's format: the first piece's, or given (a replay of the same
    pieces must come out in the same format).
    """

    def __init__(self, *, clean: bool, target: WavInfo | None = None) -> None:
        self.clean = clean
        self.target = target
        self._count = 0
        self._buffer: memoryview | None = None
        self._silence: memoryview | None = None

    def ready(self, piece: Piece, info: WavInfo | None = None) -> Ready:
        """Check ``piece`` (already probed as ``info``, or probed now) and open it."""
        info = info or probe(piece.path)
        check_piece(piece, info)
        if self.target is None:
            self.target = info
        target = self.target
        if self._buffer is None:
            self._buffer = memoryview(bytearray(_BLOCK - _BLOCK % target.frame_size))
            self._silence = memoryview((b"\x80" if target.width == 1 else b"\0") * _BLOCK)
        source: PieceSource
        if same_format(info, target):
            source = FileSource(piece.path, info)
        else:
            source = BytesSource(convert_piece(piece.path, info, target))
        try:
            allowed = allowed_bytes(piece, target)
            if allowed is not None and source.size > allowed:  # a conversion that grew too much
                raise AudioError(f"segment {piece.path.name} came out longer than its text allows")
            span = piece_bounds(source, target, self._buffer, clean=self.clean)
        except BaseException:
            source.__exit__(None, None, None)
            raise
        gap = gap_bytes(piece, target) if self._count else 0
        self._count += 1
        size = (span[1] - span[0]) * target.frame_size
        return Ready(piece, source, span, size, gap)

    def silence(self, size: int, out: Out) -> None:
        """Write ``size`` bytes of silence to ``out``."""
        assert self._silence is not None
        for at in range(0, size, _BLOCK):
            out.write(self._silence[: min(_BLOCK, size - at)])

    def write(self, ready: Ready, out: Out) -> int:
        """Write ``ready``'s samples (not its gap) to ``out`` and close it; return bytes."""
        assert self.target is not None and self._buffer is not None
        with ready.source as source:
            return emit(source, self.target, out, self._buffer, ready.span, clean=self.clean)


def allowed_bytes(piece: Piece, target: WavInfo) -> int | None:
    """The most bytes a piece may take in the output, converted or not."""
    if piece.max_seconds is None:
        return None
    return (int(piece.max_seconds * target.rate) + 1) * target.frame_size
