"""A document's audiobook, written while its segments arrive.

:class:`BookStream` is fed the pieces in book order (:meth:`~BookStream.add`, blocking:
run it on a worker thread) and encodes them as they come, so once the last one is in
only a remux and tags are left (:meth:`~BookStream.finish`):

- compressed outputs: ffmpeg reads the book's PCM through a pipe and encodes it into a
  hidden file beside the output; at the end M4B/M4A are remuxed (chapters,
  ``faststart``), MP3 gets ID3 tags and chapters, FLAC/Ogg/Opus Vorbis comments. No WAV
  of the whole book is ever on disk;
- WAV: the stitched samples are the file; its sizes and ``LIST/INFO`` tags are
  written at the end (never copied again);
- ``split_hours``: a part may end only in a gap between chunks, greedily
  (:class:`~narrator.book.parts.PartPlanner`); one piece is held back until the next
  arrives, since where a part may end is known only once the next piece's length is;
- ``normalize``: a second ffmpeg measures the loudness as the book streams; the second
  pass (which applies it) reads the segments again at the end, so its tail is a full
  encode.

:meth:`~BookStream.abort` (or any error) stops the encoders and removes every hidden
file; :meth:`~BookStream.cancel`, from another thread, stops a :meth:`~BookStream.finish`
in progress (a stop: the remux or the second loudness pass is not left running on past
the run, writing its hidden file). What a process killed outright left is removed by the
next stream to the same output. The first piece starts the encoders: a document waiting
for its first segment costs no process.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ..chunks.split import Chunk
from ..errors import AudioError, Stopped
from ..inputs.documents import Document
from ..settings import AudiobookOptions
from ..util.atomic import sweep_leftovers
from ..util.wav import WavInfo
from .encode import Metadata, finish_part, format_of, tag_values
from .encoder import Encoder, stream_args, temp_part
from .ffmpeg import apply_filter, measure_filter, parse_loudness
from .joiner import Joiner, Piece, Ready
from .parts import Audiobook, PartPlanner, chapter_marks, marks_in, part_path
from .readtext import book_text
from .subtitles import Cue, bounded, sentence_cues, write_subtitles
from .timings import LevelTap, PauseLog
from .wavfile import WavFile

__all__ = ["BookStream"]


class _Sink(Protocol):
    @property
    def path(self) -> Path | None: ...  # the hidden file it writes

    def write(self, data: bytes | memoryview, /) -> object: ...
    def end(self) -> None: ...
    def seal(self, tags: Mapping[str, str]) -> None: ...
    def kill(self) -> None: ...


class _Null:
    """A part whose samples are only counted (while loudness is measured first)."""

    path: Path | None = None

    def write(self, data: bytes | memoryview, /) -> None:
        return None

    def end(self) -> None:
        return None

    def seal(self, tags: Mapping[str, str]) -> None:
        return None

    def kill(self) -> None:
        return None


class _Router:
    """The book's samples into its parts: a new part at each cut (a byte offset)."""

    def __init__(self, opener: Callable[[int], _Sink]) -> None:
        self._open = opener
        self.sinks: list[_Sink] = []
        self._cuts: collections.deque[int] = collections.deque()
        self._pos = 0

    def cut_at(self, pos: int) -> None:
        if pos < self._pos or (self._cuts and pos <= self._cuts[-1]):
            raise AudioError(f"a part cannot end at byte {pos:,}: already written")
        self._cuts.append(pos)

    def write(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while len(view):
            if not self.sinks:
                self.sinks.append(self._open(1))
            elif self._cuts and self._cuts[0] == self._pos:
                self._cuts.popleft()
                self.sinks[-1].end()
                self.sinks.append(self._open(len(self.sinks) + 1))
            room = self._cuts[0] - self._pos if self._cuts else len(view)
            n = min(room, len(view))
            self.sinks[-1].write(view[:n])
            self._pos += n
            view = view[n:]

    def close(self) -> None:
        if not self.sinks:
            self.sinks.append(self._open(1))  # a book of silence is still a book
        self.sinks[-1].end()


class _Tee:
    def __init__(self, *outs: _Router | Encoder | LevelTap) -> None:
        self._outs = outs

    def write(self, data: bytes | memoryview, /) -> None:
        for out in self._outs:
            out.write(data)


class BookStream:
    """One document's audiobook, fed its pieces in order (see the module docstring).

    ``chunks`` are the document's, one per piece to come. Nothing is written before the
    first :meth:`add`; ``output`` (or its parts) appears only at :meth:`finish`. ``lang``
    splits the sentences of subtitles cued by sentence. Without ``audio``, only the
    subtitles are written, cued exactly as a stream with audio cues them: the samples are
    stitched and read for their pauses, then dropped (no encoder, no hidden file, the
    book's files untouched), for a book already made that is asked for subtitles anew.
    """

    def __init__(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        output: Path,
        options: AudiobookOptions | None = None,
        *,
        lang: str = "en",
        audio: bool = True,
    ) -> None:
        self.document = document
        self.chunks = chunks
        self.output = output
        self.options = options or AudiobookOptions()
        self.fmt = format_of(output, self.options.format)
        self._audio = audio
        clean = self.options.clean_joins
        self._joiner = Joiner(clean=clean if clean is not None else self.fmt != "wav")
        self._pieces: list[Piece] = []  # read again by the normalising pass
        self._pending: Ready | None = None
        self._starts: list[float] = []
        self._durations: list[float] = []
        self._written = 0  # bytes of samples in the whole book so far
        self._planner = PartPlanner(self.options.split_hours)
        self._bounds = [0.0]  # seconds where each part starts
        self._cuts: list[int] = []  # bytes where each part after the first starts
        self._router: _Router | None = None
        self._out: _Tee | None = None
        self._measure: Encoder | None = None
        self._sinks: list[_Sink] = []
        self._temps: list[Path] = []
        self._error: BaseException | None = None
        self._lang = lang
        self._pauses: PauseLog | None = None  # read for subtitles cued by sentence
        self._cancelled = False  # set by another thread: the finish in progress stops

    @property
    def started(self) -> bool:
        """Whether the first piece is in (and with it, any encoder)."""
        return self._router is not None

    def add(self, piece: Piece) -> None:
        """Append the next piece. Raises :class:`AudioError` (bad segment, ffmpeg) or
        :class:`OSError`; after an error the stream is aborted and every call raises."""
        if self._error is not None:
            raise self._error  # the first error is the one to report
        try:
            ready = self._joiner.ready(piece)
            try:
                if self._router is None:
                    self._start()
                if self._pending is not None:
                    self._settle(ready.gap)
            except BaseException:
                ready.close()
                raise
            self._pending = ready
            self._pieces.append(piece)
        except BaseException as exc:
            self._error = exc
            self.abort()
            raise

    def finish(self) -> Audiobook:
        """The last piece is in: finish every part (remux, tags) and write the sidecars."""
        if self._error is not None:
            raise self._error  # the first error is the one to report
        try:
            return self._finish()
        except BaseException as exc:
            self._error = exc
            self.abort()
            raise

    def cancel(self) -> None:
        """Stop a :meth:`finish` running on another thread: its encoders are killed and
        it raises :class:`~narrator.errors.Stopped` at its next step, removing every
        hidden file on its way out (its own thread does, so nothing is created after)."""
        self._cancelled = True
        for sink in list(self._sinks):
            sink.kill()
        if self._measure is not None:
            self._measure.kill()

    def _check(self) -> None:
        if self._cancelled:
            raise Stopped(f"{self.output.name}: stopped before it was finished")

    def abort(self) -> None:
        """Stop every encoder and remove every hidden file; the output is left as it was."""
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        for sink in self._sinks:
            sink.kill()
        if self._measure is not None:
            self._measure.kill()
        for path in self._temps:
            path.unlink(missing_ok=True)

    # --- while streaming --------------------------------------------------------------

    def _start(self) -> None:
        target = self._joiner.target
        assert target is not None
        outs: list[LevelTap] = []
        if self.options.subtitles and self.options.cue == "sentence":
            self._pauses = PauseLog(target.rate, target.width, target.channels)
            outs.append(self._pauses.tap)
        if not self._audio:  # the cues are read before any gain: none is measured
            self._router = _Router(lambda number: _Null())
            self._out = _Tee(self._router, *outs)
            return
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # A run killed outright left its hidden parts here: hundreds of MB, nobody's now.
        sweep_leftovers(self.output)
        if self.options.normalize:
            self._router = _Router(lambda number: _Null())
            self._measure = Encoder(
                target,
                ["-af", measure_filter(self.options.target_lufs, self.options.true_peak),
                 "-f", "null", "-"],
                what=f"measure the loudness of {self.output.name}",
            )  # fmt: skip
            self._out = _Tee(self._router, self._measure, *outs)
        else:
            self._router = _Router(lambda number: self._open(target, number))
            self._out = _Tee(self._router, *outs)

    def _open(self, target: WavInfo, number: int, args: Sequence[str] = ()) -> _Sink:
        self._check()
        tmp = temp_part(self.output, number)
        self._temps.append(tmp)
        sink: _Sink
        if self.fmt == "wav" and not args:
            sink = WavFile(tmp, target)
        else:
            sink = Encoder(
                target,
                [*args, *stream_args(self.fmt, target.width), str(tmp)],
                what=f"encode {self.output.name}",
                path=tmp,
            )
        self._sinks.append(sink)
        return sink

    def _settle(self, next_gap: int | None) -> None:
        """Write the piece held back, now that the gap after it (``next_gap`` bytes, None
        after the last piece) tells where a part could end after it."""
        ready, target, out = self._pending, self._joiner.target, self._out
        assert ready is not None and target is not None and out is not None
        assert self._router is not None
        self._pending = None
        frame, rate = target.frame_size, target.rate
        at = self._written + ready.gap
        start = at // frame / rate
        end = start + ready.size // frame / rate
        # The middle of the gap after this piece, as the batch plan measured it.
        if next_gap is None:
            cut = (at + ready.size) // frame / rate
        else:
            cut = (end + (at + ready.size + next_gap) // frame / rate) / 2
        made = self._planner.offer(cut)
        if made is not None:  # in the gap before this piece, which is not written yet
            self._bounds.append(made)
            cut_frame = min(max(round(made * rate), self._written // frame), at // frame)
            self._cuts.append(cut_frame * frame)
            self._router.cut_at(self._cuts[-1])
        self._joiner.silence(ready.gap, out)
        self._starts.append(start)
        self._durations.append(ready.size // frame / rate)
        self._written = at + self._joiner.write(ready, out)
        if self._pauses is not None:
            self._pauses.mark(self.chunks[len(self._starts) - 1].index, start, end)

    # --- at the end -------------------------------------------------------------------

    def _finish(self) -> Audiobook:
        if self._pending is None:
            raise AudioError("nothing to stitch")
        self._settle(None)
        router, target = self._router, self._joiner.target
        assert router is not None and target is not None
        router.close()
        seconds = self._written // target.frame_size / target.rate
        if len(self._bounds) == 1 or seconds > self._bounds[-1]:
            self._bounds.append(seconds)
        if self._measure is not None:
            router = self._normalized(target)
        parts = list(zip(self._bounds, self._bounds[1:], strict=False))
        if len(parts) != len(router.sinks):
            raise AudioError(f"{self.output.name}: {len(router.sinks)} parts, {len(parts)} planned")
        marks = chapter_marks(self.document, self.chunks, self._starts)
        files: list[Path] = []
        sidecars: list[Path] = []
        cues = self._cues() if self.options.subtitles else []
        for number, ((start, end), sink) in enumerate(
            zip(parts, router.sinks, strict=True), start=1
        ):
            path = part_path(self.output, number, len(parts))
            self._check()
            if not self._audio:
                files.append(path)
                sidecars.append(self._subtitles(cues, path, start, end))
                continue
            meta = self._metadata(number, len(parts))
            sink.seal(tag_values(meta))
            assert sink.path is not None
            finish_part(
                sink.path,
                path,
                fmt=self.fmt,
                metadata=meta,
                chapters=marks_in(marks, start, end),
                seconds=end - start,
            )
            files.append(path)
            if self.options.subtitles:
                sidecars.append(self._subtitles(cues, path, start, end))
        return Audiobook(tuple(files), tuple(sidecars), seconds, tuple(marks), tuple(self._starts))

    def _metadata(self, number: int, total: int) -> Metadata:
        title = self.options.title or self.document.title
        many = total > 1
        return Metadata(
            title=f"{title} (part {number} of {total})" if many else title,
            author=self.options.author or self.document.author,
            album=self.options.album or (title if many else None),
            year=self.options.year,
            cover=self.options.cover,
            track=(number, total) if many else None,
        )

    def _normalized(self, target: WavInfo) -> _Router:
        """The second loudness pass: the segments read again, at the measured gain,
        into one encoder per part, cut where the first pass cut."""
        assert self._measure is not None
        loudness = parse_loudness(self._measure.close(), self.output.name)
        self._measure = None
        gain = apply_filter(
            loudness,
            rate=target.rate,
            target=self.options.target_lufs,
            true_peak=self.options.true_peak,
        )
        total = len(self._bounds) - 1

        def opener(number: int) -> _Sink:
            args = ["-af", gain or "anull"]
            if self.fmt == "wav":  # ffmpeg writes this WAV, and its LIST/INFO tags
                for key, value in tag_values(self._metadata(number, total)).items():
                    args += ["-metadata", f"{key}={value}"]
            return self._open(target, number, args)

        router = _Router(opener)
        for cut in self._cuts:
            router.cut_at(cut)
        joiner = Joiner(clean=self._joiner.clean, target=target)
        for piece in self._pieces:
            self._check()
            ready = joiner.ready(piece)
            joiner.silence(ready.gap, router)
            joiner.write(ready, router)
        router.close()
        return router

    def _cues(self) -> list[Cue]:
        """The book's cues over the whole book: one per sentence (a long one in pieces read
        at a glance), or one per chunk (``--cue chunk``: each chunk whole, as it always was)."""
        if self._pauses is not None:
            sentences = sentence_cues(
                book_text(self.document, self.chunks, self._lang), self._pauses
            )
            return [piece for cue in sentences for piece in bounded(cue)]
        return [
            Cue(s, s + d, chunk.shown)
            for chunk, s, d in zip(self.chunks, self._starts, self._durations, strict=True)
        ]

    def _subtitles(self, cues: Sequence[Cue], path: Path, start: float, end: float) -> Path:
        """The part from ``start`` to ``end``'s subtitles: the cues that start in it."""
        kind = self.options.subtitles
        assert kind is not None
        inside = [
            Cue(c.start - start, min(c.end, end) - start, c.text)
            for c in cues
            if start <= c.start < end
        ]
        return write_subtitles(inside, path.with_suffix(f".{kind}"), kind)
