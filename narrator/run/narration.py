"""One document through the shared pool: its chunks submitted, collected in order and
streamed into its audiobook as they come (:class:`~narrator.book.stream.BookStream`, on
a thread of the document's own), so the book is finished soon after its last chunk.

A segment goes into the book only once the quality gate's word on it is final: a pass
judged while the run still guessed the voice's speech rate (``provisional``) is held
until the gate has learnt enough to judge it again, or the whole document is in (as a
run without streaming would judge it). A failed chunk, ``--qa strict`` meeting a bad
segment, or a stop abandons the book: its encoders stop and its hidden files go.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..book.audiobook import Audiobook
from ..book.encode import ChapterMark
from ..book.readalong import BookWriter, open_book
from ..book.stitch import Piece
from ..chunks.language import resolve_language
from ..chunks.split import Chunk
from ..errors import ChunkFailed, NarratorError, Stopped, StopRun
from ..inputs.documents import Document
from ..settings import AudiobookOptions, Settings
from ..synth.pool import Job, Outcome, Pool
from ..synth.quality import MIN_SAMPLES, profile
from ..synth.sanity import max_seconds
from ..util.diskspace import disk_full, is_disk_full
from .plan import Plan
from .results import DocumentReport, ProgressCallback, ProgressEvent, flags_of, voices_of
from .status import Status

__all__ = ["chunk_gap_ms", "narrate_one"]

log = logging.getLogger("narrator")


def chunk_gap_ms(settings: Settings, previous: Chunk | None, chunk: Chunk) -> int:
    """The silence before ``chunk``, in milliseconds."""
    if previous is None:
        return 0
    if chunk.chapter != previous.chapter:
        return settings.chapter_gap_ms
    if chunk.paragraph_start:
        return settings.paragraph_gap_ms
    if chunk.speaker != previous.speaker:  # a quotation and its tag belong together
        return min(settings.quote_gap_ms, settings.gap_ms)
    return settings.gap_ms


def _count(on_progress: ProgressCallback, chunk: Chunk, future: asyncio.Future[Outcome]) -> None:
    # A chunk stopped before it finished is not progress: a Ctrl-C must not fill the bar.
    if future.cancelled() or isinstance(future.exception(), (StopRun, Stopped)):
        return
    cached = future.exception() is None and future.result().cached
    on_progress(ProgressEvent("chunk", chunks=1, characters=chunk.billing_chars, cached=cached))


class _Feed:
    """A document's :class:`BookStream` on a thread of its own, fed in book order
    without blocking the event loop; a slow encoder never holds up synthesis (the
    pieces wait in the queue, their segments are in the cache anyway). The thread and
    the stream start with the first piece."""

    def __init__(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        output: Path,
        options: AudiobookOptions,
        on_error: Callable[[BaseException], None],
        *,
        lang: str,
    ) -> None:
        self._args = (document, chunks, output, options)
        self._lang = lang  # the --lang setting: "auto" is resolved on the book's thread
        self._on_error = on_error
        self._stream: BookWriter | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._dropped = False  # set on the loop, read by the thread: skip what is queued
        self.fed = 0

    def add(self, piece: Piece) -> None:
        """Queue the next piece."""
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="narrator-book"
            )
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._add, piece)
        done.add_done_callback(self._check)
        self.fed += 1

    def _add(self, piece: Piece) -> None:
        if self._dropped:
            return
        if self._stream is None:
            lang = resolve_language(self._args[0], self._lang)
            self._stream = open_book(*self._args, lang=lang)
        self._stream.add(piece)

    def _check(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._on_error(done.exception())  # type: ignore[arg-type]

    async def finish(self) -> Audiobook:
        """Every piece is queued: the book, once the stream has written it. Cancelled (a
        stop), the finish in progress is stopped and its hidden files removed before this
        returns: left running, it held the process's exit for as long as a remux or a
        second loudness pass takes, and a supervisor's kill meanwhile left its part."""
        assert self._thread is not None
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._finish)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if self._stream is not None:
                self._stream.cancel()
            await asyncio.wait([done])  # it unwinds at once, removing what it wrote
            if not done.cancelled():
                done.exception()  # Stopped, as asked: nobody else will look at it
            raise
        finally:
            self._thread.shutdown(wait=False)
            self._thread = None  # the stream aborts itself on an error

    def _finish(self) -> Audiobook:
        assert self._stream is not None
        return self._stream.finish()

    async def abort(self) -> None:
        """Abandon the book: what is queued is skipped, encoders stop, hidden files go."""
        if self._thread is None:
            return
        self._dropped = True
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._abort)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self._thread.shutdown(wait=True)  # cancelled again: still leave nothing behind
            raise
        finally:
            self._thread.shutdown(wait=False)

    def _abort(self) -> None:
        if self._stream is not None:
            self._stream.abort()


# A provisional pass goes into the book once it has been judged again with at least this
# many passes of every script of its text behind the gate (else once the document is in,
# as without streaming). More than the gate's own minimum (MIN_SAMPLES): the wide prior
# lets a cut answer pass, and a few of those among the first samples widen the spread;
# a run without streaming judged them again with the whole document's samples.
SETTLED_SAMPLES = 4 * MIN_SAMPLES


def _final(outcome: Outcome) -> bool:
    """Whether the gate's word on ``outcome`` is final (no recheck would change it)."""
    verdict = outcome.verdict
    if verdict is None or not verdict.provisional or outcome.flagged:
        return True
    return outcome.measurement is None


def _judgeable(pool: Pool, job: Job) -> bool:
    """Whether the gate knows enough to judge a provisional pass of ``job`` for good."""
    retakes = pool.retakes
    if retakes is None:
        return True
    rates = retakes.gate.rates(retakes.key_of(job))
    scripts = {"latin" if script == "digits" else script for script, _ in profile(job.text).weights}
    return all(len(rates.samples.get(script, ())) >= SETTLED_SAMPLES for script in scripts)


async def _one(awaitable: asyncio.Future[Outcome]) -> Outcome | BaseException:
    result: Outcome | BaseException = (await asyncio.gather(awaitable, return_exceptions=True))[0]
    return result


class _Arrivals:
    """How many of a document's chunks are still out, and a wait for the next to come.

    One callback per chunk: waiting on every pending future each time (``asyncio.wait``)
    made a 10,000-chunk document quadratic (17 s of CPU per 1,000 chunks, not 2)."""

    def __init__(self, futures: Sequence[asyncio.Future[Outcome]]) -> None:
        self.left = 0
        self._came = asyncio.Event()
        for future in futures:
            if not future.done():
                self.left += 1
                future.add_done_callback(self._one)

    def _one(self, future: asyncio.Future[Outcome]) -> None:
        self.left -= 1
        self._came.set()

    async def next(self) -> None:
        """Until another chunk is in (callbacks run only while we wait: none is missed)."""
        self._came.clear()
        await self._came.wait()


async def _stream_in_order(
    pool: Pool,
    jobs: Sequence[Job],
    futures: Sequence[asyncio.Future[Outcome]],
    feed: _Feed,
    piece: Callable[[int, Outcome], Piece],
    *,
    strict: bool,
) -> list[Outcome | BaseException]:
    """Every chunk's result; as long as all is well, each segment is fed to the book as
    soon as it and those before it are in and final (see the module docstring)."""
    results: list[Outcome | BaseException] = []
    arrivals = _Arrivals(futures)
    for index, future in enumerate(futures):
        result = await _one(future)
        if isinstance(result, Outcome) and not _final(result):
            while not _judgeable(pool, jobs[index]):
                if not arrivals.left:
                    break  # the document is in: judged with all it taught, as ever
                await arrivals.next()
            result = await _one(asyncio.ensure_future(pool.recheck(jobs[index], result)))
        results.append(result)
        if not isinstance(result, Outcome) or (strict and result.flagged):
            break
        feed.add(piece(index, result))
    rest = await asyncio.gather(*futures[len(results) :], return_exceptions=True)
    return [*results, *rest]


async def narrate_one(
    pool: Pool, plan: Plan, settings: Settings, on_progress: ProgressCallback
) -> DocumentReport:
    work, chunks, keys = plan.work, plan.chunks, plan.keys
    doc = work.document

    def report(
        status: Status,
        *,
        seconds: float = 0.0,
        errors: Sequence[str] = (),
        chapters: Sequence[ChapterMark] = (),
        files: Sequence[Path] = (),
        starts: Sequence[float] = (),
    ) -> DocumentReport:
        return DocumentReport(
            input=doc.source,
            output=str(work.output),
            title=doc.title,
            status=status,
            chunks=len(chunks),
            billing_characters=sum(c.billing_chars for c in chunks),
            audio_seconds=round(seconds, 3),
            requests=sum(pool.spent(key, work)[0] for key in set(keys)),
            retries=sum(pool.spent(key, work)[1] for key in set(keys)),
            cached_chunks=sum(o.cached for o in outcomes),
            errors=tuple(errors),
            chapters=tuple(ChapterMark(m.title, round(m.start, 3)) for m in chapters),
            files=tuple(str(f) for f in files),
            flagged=flags_of(chunks, outcomes, starts),
            respelled_chunks=sum(c.written is not None for c in chunks),
            voices=voices_of(chunks, settings.voice),
            warnings=plan.warnings,
        )

    outcomes: list[Outcome] = []
    if not chunks:
        log.debug("%s: nothing to narrate, skipped", doc.source)  # the report says so
        return report(Status.SKIPPED, errors=["nothing to narrate"])
    futures = []
    jobs = [
        Job(key, chunk.text, chunk.billing_chars, chunk.voice)
        for chunk, key in zip(chunks, keys, strict=True)
    ]
    for chunk, job in zip(chunks, jobs, strict=True):
        future = pool.submit(job, owner=work)
        future.add_done_callback(functools.partial(_count, on_progress, chunk))
        futures.append(future)

    def piece(index: int, outcome: Outcome) -> Piece:
        chunk = chunks[index]
        gap = chunk_gap_ms(settings, chunks[index - 1] if index else None, chunk)
        return Piece(outcome.segment.path, gap, max_seconds(chunk.billing_chars))

    def book_failed(exc: BaseException) -> None:
        if is_disk_full(exc):  # stop paying for chunks that cannot be written
            pool.stop(disk_full(work.output.absolute().parent))

    feed = _Feed(doc, chunks, work.output, settings.audiobook, book_failed, lang=settings.lang)
    try:
        results = await _stream_in_order(
            pool, jobs, futures, feed, piece, strict=settings.qa == "strict"
        )
        outcomes, status, errors = await _judge_all(
            pool, jobs, chunks, results, settings, doc.source
        )
        if status is not None:
            await feed.abort()
            return report(status, errors=errors)
        for index in range(feed.fed, len(chunks)):
            feed.add(piece(index, outcomes[index]))
        book = await feed.finish()
    except (NarratorError, OSError) as exc:
        await feed.abort()
        if is_disk_full(exc):
            full = disk_full(work.output.absolute().parent)
            pool.stop(full)
            return report(Status.STOPPED, errors=[f"writing {work.output}: the disk is full"])
        return report(Status.FAILED, errors=[f"writing {work.output}: {exc}"])
    except BaseException:
        await feed.abort()
        raise
    return report(
        Status.DONE,
        seconds=book.seconds,
        chapters=book.chapters,
        files=book.files,
        starts=book.starts,
    )


async def _judge_all(
    pool: Pool,
    jobs: Sequence[Job],
    chunks: Sequence[Chunk],
    results: list[Outcome | BaseException],
    settings: Settings,
    source: str,
) -> tuple[list[Outcome], Status | None, list[str]]:
    """The document's outcomes, each judged for good (see the module docstring), and
    what stops its book: a status and its errors, or None and no errors."""
    outcomes: list[Outcome] = []
    for attempt in range(2):
        outcomes = [r for r in results if isinstance(r, Outcome)]
        errors: list[str] = []
        stopped = False
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, (StopRun, Stopped)):
                stopped = True
            elif isinstance(result, ChunkFailed):
                errors.append(f"chunk {chunk.index + 1}: {result}")
            elif isinstance(result, BaseException):
                raise result  # a bug, not a service failure: let it show
        if stopped:
            return (
                outcomes,
                Status.STOPPED,
                errors or ["the run stopped before this document finished"],
            )
        if errors:
            log.error("%s: %d of %d chunks failed", source, len(errors), len(chunks))
            return outcomes, Status.FAILED, errors
        if attempt or pool.gate is None:
            break
        # Segments passed while the run's speech rate was still a guess are judged again
        # with what the whole document taught (those already in the book were, before).
        results = list(
            await asyncio.gather(
                *(pool.recheck(job, o) for job, o in zip(jobs, outcomes, strict=True)),
                return_exceptions=True,
            )
        )
    if settings.qa == "strict" and any(o.flagged for o in outcomes):
        flags = flags_of(chunks, outcomes, ())
        log.error("%s: %d segments still bad (--qa strict)", source, len(flags))
        return (
            outcomes,
            Status.FAILED,
            [
                f"chunk {f.chunk}: {f.kind} audio ({f.reason}) after {f.attempts} attempts "
                "(--qa strict)"
                for f in flags
            ],
        )
    return outcomes, None, []
