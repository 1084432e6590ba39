"""Stitch WAV segments, in order and with silent gaps between them, into one WAV file.

Memory stays flat however long the book is: samples go from each segment file to the
output in fixed-size blocks and are never gathered. (Joining with pydub's
``AudioSegment +=`` copies the whole book on every join: 600 ten-second segments took
59 s and 560 MB, against 0.13 s and 14 MB streamed.)

The pieces go through the writer the streaming book uses too
(:class:`~narrator.book.joiner.Joiner`). The first segment sets the output format.
Segments in that format are copied byte-for-byte, so their samples reach the output
unchanged; any other segment is converted with pydub, one segment at a time, so memory
is bounded by the longest segment, not by the book.

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

from ..errors import AudioError
from ..util.atomic import atomic_path
from ..util.wav import WavInfo
from .joiner import Joiner, Piece, check_piece, gap_bytes, probe, same_format
from .joins import FADE_MS, KEEP_MS, SILENCE_DBFS
from .riff import too_big_for_riff
from .wavfile import WavFile

__all__ = ["FADE_MS", "KEEP_MS", "SILENCE_DBFS", "Piece", "StitchResult", "stitch_wav"]


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
    probed = [(piece, probe(piece.path)) for piece in pieces]
    if not probed:
        raise AudioError("nothing to stitch")
    for piece, info in probed:
        check_piece(piece, info)
    target = probed[0][1]
    # The estimate is an upper bound (trimming only shortens), so the layout is chosen
    # before writing; a frame per piece covers resampling's rounding.
    rf64 = too_big_for_riff(_estimate_size(probed, target) + len(probed) * target.frame_size)

    output.parent.mkdir(parents=True, exist_ok=True)
    joiner = Joiner(clean=clean)
    starts: list[float] = []
    durations: list[float] = []
    with atomic_path(output) as tmp:
        out = WavFile(tmp, target, rf64=rf64)
        try:
            for piece, info in probed:
                ready = joiner.ready(piece, info)
                joiner.silence(ready.gap, out)
                starts.append(out.written // target.frame_size / target.rate)
                size = joiner.write(ready, out)
                durations.append(size // target.frame_size / target.rate)
                del ready  # do not keep one converted segment alive while copying the next
            out.close()
        finally:
            out.discard()
    return StitchResult(
        path=output,
        rate=target.rate,
        channels=target.channels,
        width=target.width,
        frames=out.written // target.frame_size,
        starts=tuple(starts),
        durations=tuple(durations),
    )


def _estimate_size(probed: Sequence[tuple[Piece, WavInfo]], target: WavInfo) -> int:
    """Data bytes of the output, exact unless pieces are resampled."""
    size = sum(gap_bytes(piece, target) for piece, _ in probed[1:])
    for _, info in probed:
        if same_format(info, target):
            size += info.data_size
        else:
            size += -(-info.frames * target.rate // info.rate) * target.frame_size
    return size
