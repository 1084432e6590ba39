"""A read-along book (EPUB 3 with Media Overlays), written while its segments arrive.

:class:`ReadAlongStream` is fed the pieces in book order, like the audiobook's
:class:`~narrator.book.stream.BookStream`, and stitches each chapter into an audio file
of its own (AAC in ``.m4a``, one ffmpeg per chapter, fed through a pipe). Each chunk's
place in its chapter's audio is exact; the samples are read on their way to the encoder
for the pauses that place each sentence (:mod:`narrator.book.timings`). At the end the
text is laid out (:mod:`narrator.book.readtext`) and the package written
(:mod:`narrator.book.epub`). A chapter's audio starts with its first chunk: the gap
before a chapter is a page turn here, not silence.

:func:`open_book` is what a document's narration writes to: the audiobook, the
read-along book, or both fed the same pieces (``read_along`` beside another output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from ..chunks.split import Chunk
from ..errors import AudioError, Stopped
from ..inputs.documents import Document
from ..settings import AudiobookOptions
from ..util.atomic import sweep_leftovers
from ..util.wav import WavInfo
from .encode import Metadata
from .encoder import Encoder, temp_part
from .epub import ChapterAudio, write_epub
from .joiner import Joiner, Piece
from .parts import Audiobook, chapter_marks
from .readtext import book_text
from .stream import BookStream
from .timings import LevelTap, PauseLog

__all__ = ["READ_ALONG", "BookWriter", "ReadAlongStream", "is_read_along", "open_book"]

READ_ALONG = "epub"  # the output's extension that asks for a read-along book

# AAC at the audiobook's rate; ``-aac_coder fast`` is 3-5x faster on speech than the
# default coder and sounds the same at 64 kb/s mono.
_AAC = ["-map_metadata", "-1", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "64k", "-f", "ipod"]


class BookWriter(Protocol):
    """What a document's narration feeds: pieces in order, then finish or abort."""

    def add(self, piece: Piece) -> None: ...
    def finish(self) -> Audiobook: ...
    def abort(self) -> None: ...
    def cancel(self) -> None: ...  # from another thread: stop a finish in progress


class _Tee:
    def __init__(self, *outs: Encoder | LevelTap) -> None:
        self._outs = outs

    def write(self, data: bytes | memoryview, /) -> None:
        for out in self._outs:
            out.write(data)


class ReadAlongStream:
    """One document's read-along book, fed its pieces in order (see the module docstring).

    ``chunks`` are the document's, one per piece to come; ``lang`` is its language (for
    the sentences and the package's ``dc:language``).
    """

    def __init__(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        output: Path,
        options: AudiobookOptions | None = None,
        *,
        lang: str = "en",
    ) -> None:
        self.document = document
        self.chunks = chunks
        self.output = output
        self.options = options or AudiobookOptions()
        self.lang = lang
        self._joiner = Joiner(clean=True)  # trimmed joins: clips start where speech does
        self._count = 0
        self._chapter: int | None = None
        self._encoder: Encoder | None = None
        self._log: PauseLog | None = None
        self._written = 0  # bytes in the current chapter's audio
        self._audio: list[tuple[Path, float, PauseLog]] = []  # finished chapters
        self._temps: list[Path] = []
        self._starts: list[float] = []  # each chunk's start over the whole book
        self._before = 0.0  # seconds of the chapters before the current one
        self._error: BaseException | None = None
        self._cancelled = False

    def add(self, piece: Piece) -> None:
        """Append the next piece. Raises :class:`AudioError` or :class:`OSError`; after
        an error the stream is aborted and every call raises."""
        if self._error is not None:
            raise self._error
        try:
            self._add(piece)
        except BaseException as exc:
            self._error = exc
            self.abort()
            raise

    def _add(self, piece: Piece) -> None:
        if self._count >= len(self.chunks):
            raise AudioError(f"{self.output.name}: more pieces than chunks")
        chunk = self.chunks[self._count]
        ready = self._joiner.ready(piece)
        target = self._joiner.target
        assert target is not None
        try:
            if self._chapter != chunk.chapter:
                self._close_chapter()
                self._open_chapter(target, chunk.chapter)
            assert self._encoder is not None and self._log is not None
            out = _Tee(self._encoder, self._log.tap)
            if self._written:  # no silence opens a chapter
                self._joiner.silence(ready.gap, out)
                self._written += ready.gap
        except BaseException:
            ready.close()
            raise
        start = self._written // target.frame_size / target.rate
        self._written += self._joiner.write(ready, out)
        end = self._written // target.frame_size / target.rate
        self._log.mark(chunk.index, start, end)
        self._starts.append(self._before + start)
        self._count += 1

    def _open_chapter(self, target: WavInfo, chapter: int) -> None:
        if not self._temps:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            sweep_leftovers(self.output)  # what a run killed outright left here
        tmp = temp_part(self.output, len(self._audio) + 1).with_suffix(".m4a")
        self._temps.append(tmp)
        self._encoder = Encoder(
            target, [*_AAC, str(tmp)], what=f"encode the audio of {self.output.name}", path=tmp
        )
        self._log = PauseLog(target.rate, target.width, target.channels)
        self._chapter, self._written = chapter, 0

    def _close_chapter(self) -> None:
        if self._encoder is None or self._log is None:
            return
        target = self._joiner.target
        assert target is not None and self._encoder.path is not None
        self._encoder.close()
        seconds = self._written // target.frame_size / target.rate
        self._audio.append((self._encoder.path, seconds, self._log))
        self._before += seconds
        self._encoder = None

    def finish(self) -> Audiobook:
        """The last piece is in: finish the audio and write the package."""
        if self._error is not None:
            raise self._error
        try:
            return self._finish()
        except BaseException as exc:
            self._error = exc
            self.abort()
            raise

    def _finish(self) -> Audiobook:
        if self._count != len(self.chunks) or not self.chunks:
            raise AudioError(f"{self.output.name}: {self._count} of {len(self.chunks)} pieces in")
        self._close_chapter()
        chapters = book_text(self.document, self.chunks, self.lang)
        if len(chapters) != len(self._audio):
            raise AudioError(
                f"{self.output.name}: {len(chapters)} chapters, {len(self._audio)} with audio"
            )
        audio: list[ChapterAudio] = []
        for chapter, (path, seconds, log) in zip(chapters, self._audio, strict=True):
            sentences = chapter.sentences
            starts = log.starts([(s.chunk, s.weight) for s in sentences])
            # Each sentence lasts until the next starts; the chapter's last, to its end.
            clips = tuple(zip(starts, [*starts[1:], seconds], strict=True))
            audio.append(ChapterAudio(path, seconds, clips))
        if self._cancelled:
            raise Stopped(f"{self.output.name}: stopped before it was finished")
        meta = Metadata(
            title=self.options.title or self.document.title,
            author=self.options.author,
            album=self.options.album,
            year=self.options.year,
            cover=self.options.cover,
        )
        write_epub(self.output, chapters, audio, metadata=meta, lang=self.lang)
        for path in self._temps:
            path.unlink(missing_ok=True)
        seconds = self._before
        marks = chapter_marks(self.document, self.chunks, self._starts)
        return Audiobook((self.output,), (), seconds, tuple(marks), tuple(self._starts))

    def cancel(self) -> None:
        """Stop a :meth:`finish` running on another thread (see BookStream.cancel)."""
        self._cancelled = True
        encoder = self._encoder
        if encoder is not None:
            encoder.kill()

    def abort(self) -> None:
        """Stop the encoder and remove every hidden file; the output is left as it was."""
        if self._encoder is not None:
            self._encoder.kill()
            self._encoder = None
        for path in self._temps:
            path.unlink(missing_ok=True)


class _Both:
    """The audiobook and its read-along book, fed the same pieces."""

    def __init__(self, book: BookStream, read_along: ReadAlongStream) -> None:
        self._book, self._read_along = book, read_along

    def add(self, piece: Piece) -> None:
        try:
            self._book.add(piece)
            self._read_along.add(piece)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> Audiobook:
        try:
            book = self._book.finish()
            extra = self._read_along.finish()
        except BaseException:
            self.abort()
            raise
        return replace(book, files=(*book.files, *extra.files))

    def abort(self) -> None:
        self._book.abort()
        self._read_along.abort()

    def cancel(self) -> None:
        self._book.cancel()
        self._read_along.cancel()


def open_book(
    document: Document,
    chunks: Sequence[Chunk],
    output: Path,
    options: AudiobookOptions | None = None,
    *,
    lang: str = "en",
) -> BookWriter:
    """What ``document``'s pieces are fed to: a read-along book for an ``.epub`` output,
    else the audiobook, with a read-along book beside it when ``options.read_along``."""
    options = options or AudiobookOptions()
    if is_read_along(output, options.format):
        return ReadAlongStream(document, chunks, output, options, lang=lang)
    book = BookStream(document, chunks, output, options, lang=lang)
    if options.read_along is None:
        return book
    return _Both(book, ReadAlongStream(document, chunks, options.read_along, options, lang=lang))


def is_read_along(output: Path, fmt: str | None = None) -> bool:
    """Whether ``output`` (with ``--format fmt``) names a read-along book."""
    return (fmt or output.suffix.lstrip(".")).lower() == READ_ALONG
