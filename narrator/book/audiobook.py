"""From a document's segments to the files a listener gets: stitch, normalise, encode, sidecars.

One document's finishing line, fed piece by piece as its chunks are synthesized
(:class:`~narrator.book.stream.BookStream`):

1. stitch the segments, with their gaps, in order (with clean joins unless the output
   is WAV, see :class:`AudiobookOptions`), straight into the encoder (or the WAV file);
2. cut them into parts of at most ``split_hours`` (at gaps between chunks), one encoder
   each; at the end remux or tag each part with its tags and chapter marks;
3. with ``normalize``, measure the loudness while streaming, and encode again at the
   end at the measured gain (two passes);
4. write subtitles beside each part.

:func:`make_audiobook` does all of it at once for pieces already at hand: the same
stream, fed every piece, then finished. Hidden files are removed whatever happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..chunks.split import Chunk
from ..inputs.documents import Document
from ..settings import AudiobookOptions
from .joiner import Piece
from .parts import Audiobook, chapter_marks, plan_parts
from .readalong import open_book
from .stream import BookStream

__all__ = [
    "Audiobook",
    "AudiobookOptions",
    "BookStream",
    "chapter_marks",
    "make_audiobook",
    "plan_parts",
]


def make_audiobook(
    document: Document,
    chunks: Sequence[Chunk],
    pieces: Sequence[Piece],
    output: Path,
    options: AudiobookOptions | None = None,
    *,
    lang: str = "en",
) -> Audiobook:
    """Stitch ``pieces`` (one per chunk, in order) and encode them into ``output``.

    With ``split_hours``, parts are named ``NAME-01.EXT``, ``NAME-02.EXT``, ... An
    ``.epub`` output (or ``options.read_along``) is a read-along book, its sentences
    split by ``lang``'s rules. Raises :class:`~narrator.errors.AudioError` for
    unreadable segments or an ffmpeg failure.
    """
    stream = open_book(document, chunks, output, options, lang=lang)
    try:
        for piece in pieces:
            stream.add(piece)
        return stream.finish()
    except BaseException:
        stream.abort()
        raise
