"""One document through the shared pool: its chunks submitted, collected in order,
judged again once the whole document is in, then stitched into its audiobook."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from .book.audiobook import make_audiobook
from .book.encode import ChapterMark
from .book.stitch import Piece
from .chunks.split import Chunk
from .errors import ChunkFailed, NarratorError, Stopped, StopRun
from .reports import DocumentReport, ProgressCallback, ProgressEvent, Work, flags_of
from .settings import Settings
from .status import Status
from .synth.pool import Job, Outcome, Pool
from .synth.providers import Provider
from .synth.sanity import max_seconds
from .synth.store import segment_key
from .util.diskspace import disk_full, is_disk_full

__all__ = ["chunk_gap_ms", "narrate_one"]

log = logging.getLogger("narrator")


def chunk_gap_ms(settings: Settings, previous: Chunk | None, chunk: Chunk) -> int:
    """The silence before ``chunk``, in milliseconds."""
    if previous is None:
        return 0
    if chunk.chapter != previous.chapter:
        return settings.chapter_gap_ms
    return settings.paragraph_gap_ms if chunk.paragraph_start else settings.gap_ms


def _count(on_progress: ProgressCallback, chunk: Chunk, future: asyncio.Future[Outcome]) -> None:
    # A chunk stopped before it finished is not progress: a Ctrl-C must not fill the bar.
    if future.cancelled() or isinstance(future.exception(), (StopRun, Stopped)):
        return
    cached = future.exception() is None and future.result().cached
    on_progress(ProgressEvent("chunk", chunks=1, characters=chunk.billing_chars, cached=cached))


async def narrate_one(
    pool: Pool,
    provider: Provider,
    work: Work,
    chunks: list[Chunk],
    settings: Settings,
    on_progress: ProgressCallback,
) -> DocumentReport:
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
        )

    outcomes: list[Outcome] = []
    keys = [
        segment_key(provider=provider.identity, voice=settings.voice, text=chunk.text)
        for chunk in chunks
    ]
    if not chunks:
        log.debug("%s: nothing to narrate, skipped", doc.source)  # the report says so
        return report(Status.SKIPPED, errors=["nothing to narrate"])
    futures = []
    jobs = [
        Job(key, chunk.text, chunk.billing_chars) for chunk, key in zip(chunks, keys, strict=True)
    ]
    for chunk, job in zip(chunks, jobs, strict=True):
        future = pool.submit(job, owner=work)
        future.add_done_callback(functools.partial(_count, on_progress, chunk))
        futures.append(future)
    results: list[Outcome | BaseException] = list(
        await asyncio.gather(*futures, return_exceptions=True)
    )
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
            return report(
                Status.STOPPED, errors=errors or ["the run stopped before this document finished"]
            )
        if errors:
            log.error("%s: %d of %d chunks failed", doc.source, len(errors), len(chunks))
            return report(Status.FAILED, errors=errors)
        if attempt or pool.gate is None:
            break
        # Segments passed while the run's speech rate was still a guess are judged again
        # with what the whole document taught, before anything is stitched.
        results = list(
            await asyncio.gather(
                *(pool.recheck(job, o) for job, o in zip(jobs, outcomes, strict=True)),
                return_exceptions=True,
            )
        )
    if settings.qa == "strict" and any(o.flagged for o in outcomes):
        flags = flags_of(chunks, outcomes, ())
        log.error("%s: %d segments still bad (--qa strict)", doc.source, len(flags))
        return report(
            Status.FAILED,
            errors=[
                f"chunk {f.chunk}: {f.kind} audio ({f.reason}) after {f.attempts} attempts "
                "(--qa strict)"
                for f in flags
            ],
        )
    previous: Chunk | None = None
    pieces = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        gap = chunk_gap_ms(settings, previous, chunk)
        pieces.append(Piece(outcome.segment.path, gap, max_seconds(chunk.billing_chars)))
        previous = chunk
    try:
        book = await asyncio.to_thread(
            make_audiobook, doc, chunks, pieces, work.output, settings.audiobook
        )
    except (NarratorError, OSError) as exc:
        if is_disk_full(exc):
            full = disk_full(work.output.absolute().parent)
            pool.stop(full)
            return report(Status.STOPPED, errors=[f"writing {work.output}: the disk is full"])
        return report(Status.FAILED, errors=[f"writing {work.output}: {exc}"])
    return report(
        Status.DONE,
        seconds=book.seconds,
        chapters=book.chapters,
        files=book.files,
        starts=book.starts,
    )
