"""The pipeline: documents in, one audiobook per document out.

It composes the stages: split each document, send every chunk of every document
through one shared pool, and stream each document into its audiobook as its chunks
come in (:mod:`narrator.run.narration`). Nothing here blocks the event loop: documents are
loaded and split on a worker thread, the store runs on its own
(:mod:`narrator.store.thread`), and books are stitched and encoded on worker
threads, one per document being written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..book.encode import format_of
from ..book.readalong import is_read_along
from ..errors import DiskFull, InternalFailure, NarrationFailed, StopRun, StoreAway
from ..inputs.documents import Document, load_document, parse_text
from ..settings import Settings
from ..store.thread import StoreThread
from ..synth.pool import Pool, PoolConfig
from ..synth.providers import Provider, make_provider
from ..synth.quality import Gate
from ..synth.watchdog import watch
from ..util.diskspace import check_room, disk_full, is_disk_full
from .early import EarlyStart
from .narration import chunk_gap_ms, narrate_one
from .plan import Plan, Planner, book_fingerprint, casting_for
from .results import (
    DocumentReport,
    Flag,
    ProgressCallback,
    ProgressEvent,
    RunReport,
    Work,
    stopped_report,
)
from .status import Status
from .uptodate import room_needed, same_filesystem, sidecars_made, up_to_date

if TYPE_CHECKING:
    from ..cluster.pacing import SharedPacing
    from ..store import Store

__all__ = [
    "DocumentReport",
    "Flag",
    "NarrationFailed",
    "Plan",
    "ProgressCallback",
    "ProgressEvent",
    "RunReport",
    "Work",
    "book_fingerprint",
    "casting_for",
    "chunk_gap_ms",
    "narrate",
    "narrate_many",
    "narrate_sync",
]

log = logging.getLogger("narrator")


async def narrate_many(
    works: Sequence[Work | Plan],
    settings: Settings,
    *,
    provider: Provider | None = None,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    grace: float = 5.0,
) -> RunReport:
    """Narrate several documents through one pool and one rate limiter.

    A :class:`Plan` among ``works`` (made with the same settings) is narrated as planned,
    not split again. Setting ``stop`` starts no new requests; requests in flight get
    ``grace`` seconds to finish, and what finished is kept for the next run. Raises
    :class:`~narrator.errors.DiskFull` before any request when the cache or an output
    folder lacks the room the text will need; a disk that fills during the run, or no
    chunk progressing for ``settings.stall_seconds``, stops it (``RunReport.stop_error``).
    """
    began = time.monotonic()
    for work in works:  # a bad output name is refused before anything is paid for
        if not is_read_along(work.output, settings.audiobook.format):
            format_of(work.output, settings.audiobook.format)
    progress = on_progress or (lambda event: None)
    own_provider = provider is None
    provider = provider or make_provider(settings)  # opens no connection until used
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    db = StoreThread()
    try:
        store = await _open_store(db, settings, stop)
    except BaseException:
        db.shutdown()
        if own_provider:
            await provider.aclose()
        raise
    if store is None:  # stopped while the store was out of reach: nothing was sent
        if own_provider:
            await provider.aclose()
        return RunReport(
            documents=(), requests=0, retries=0, throttled=0, resynthesized=0,
            seconds=round(time.monotonic() - began, 3), stopped="interrupted",
        )  # fmt: skip
    unsplit: list[tuple[Work, DocumentReport]] = []
    pacing: SharedPacing | None = None  # None: this process paces itself
    try:
        pacing = _shared_pacing(settings)
        # The pool comes first, so the first document's chunks can leave as they are cut;
        # a bad segment may take qa_retries re-syntheses whatever the share says, and the
        # share of the run's chunks is added once the split has counted them.
        pool = Pool(
            provider,
            db,
            PoolConfig.of(settings, chunks=0),
            gate=Gate() if settings.qa != "off" else None,
            rate=pacing.rate if pacing is not None else None,
            slots=pacing.slots if pacing is not None else None,
        )
        async with pool:
            early = EarlyStart(pool, works, settings, provider)
            # Splitting a long book takes a while: off the loop, like everything that
            # blocks. A document whose respellings run over their budget fails alone.
            plans = await asyncio.to_thread(
                Planner(settings, provider).plan_all, works, unsplit, on_chunk=early.offer
            )
            early.done()
            current = [] if settings.force else await db.run(up_to_date, plans, store)
            # An up-to-date book whose subtitles are asked for anew gets them from its
            # segments in the cache; it is made again only when one of them is gone.
            planned = {str(plan.output): plan for plan in plans}
            current = [
                report
                for report in current
                if await sidecars_made(report, planned[report.output], settings, db)
            ]
            current += [report for _, report in unsplit]
            done_before = {report.output for report in current}
            plans = [plan for plan in plans if str(plan.output) not in done_before]
            check_room(await db.run(room_needed, plans, store, settings))
            # Every segment of this run is in use until it ends: no prune takes one.
            try:
                uses = {str(plan.output): plan.keys for plan in plans}
                await db.run(store.note_run, uses)
            except sqlite3.Error as exc:  # a locked or full database: the pool's writes say so
                log.warning("this run's segments are not marked in use (%s)", exc)
            total = sum(len(plan.chunks) for plan in plans)
            progress(
                ProgressEvent(
                    "planned",
                    chunks=total,
                    characters=sum(plan.billing_chars for plan in plans),
                )
            )
            share = PoolConfig.of(settings, chunks=total).qa_budget or 0
            pool.add_qa_budget(max(0, share - settings.qa_retries))
            dog = asyncio.create_task(
                watch(pool, seconds=settings.stall_seconds, what=_service(settings)),
                name="narrator-watchdog",
            )
            tasks = [
                asyncio.create_task(narrate_one(pool, plan, settings, progress)) for plan in plans
            ]
            try:
                collected = await _collect(tasks, pool, stop, grace, progress)
            finally:
                dog.cancel()
                stopping = stop is not None and stop.is_set()
                if pool.stop_reason is not None or stopping:
                    # A lookup waiting for the object store gives up; asked to stop (the
                    # grace is over), so does a call waiting for a shared database.
                    store.interrupt(database=stopping)
            # A document cut off by the stop is still one of the run's documents.
            reports = [
                report or stopped_report(plan.work, plan.chunks, plan.warnings)
                for report, plan in zip(collected, plans, strict=True)
            ]
        fingerprints = {str(plan.output): plan.fingerprint for plan in plans}
        for report in reports:
            fingerprint = fingerprints.get(report.output)
            if report.status is Status.DONE and fingerprint is not None:
                try:
                    await db.run(
                        store.record_book,
                        Path(report.output),
                        fingerprint,
                        report.audio_seconds,
                        files=[Path(f) for f in report.files],
                    )
                except sqlite3.Error as exc:
                    if not is_disk_full(exc):
                        raise
                    pool.stop(disk_full(settings.store_dir))  # the book is there; only not noted
                except OSError as exc:  # gone already: the next run simply makes it again
                    log.warning("%s: not noted as up to date (%s)", report.output, exc)
        if settings.cache_max_bytes:
            # The cap: least recently used segments go, never one of a run in progress.
            try:
                pruned = await db.run(store.prune, max_bytes=settings.cache_max_bytes)
            except StoreAway:
                pass  # a stopping run's shared database: the store's close says it once
            except (sqlite3.Error, OSError) as exc:
                log.warning("the cache was not pruned (%s)", exc)
            else:
                if pruned.removed:
                    log.info("cache over its cap: %d segments removed", pruned.removed)
        if isinstance(pool.stop_reason, DiskFull):
            # Say how much the rest needs in the full folder, now that some of it is done.
            full = Path(pool.stop_reason.folder)
            needs = await db.run(room_needed, plans, store, settings)
            same = [n for folder, n in needs.items() if same_filesystem(folder, full)]
            pool.stop_reason = disk_full(full, sum(same) or None)
    finally:
        if own_provider:
            await provider.aclose()
        if pacing is not None:
            await pacing.aclose()
        await db.close()
    stopped = str(pool.stop_reason) if pool.stop_reason else None
    if stop is not None and stop.is_set() and stopped is None:
        stopped = "interrupted"
    order = {str(work.output): n for n, work in enumerate(works)}  # a Work or a Plan
    return RunReport(
        documents=tuple(sorted([*current, *reports], key=lambda r: order.get(r.output, 0))),
        requests=pool.stats.requests,
        retries=pool.stats.retries,
        throttled=pool.stats.throttled,
        resynthesized=pool.stats.resynthesized,
        seconds=round(time.monotonic() - began, 3),
        stopped=stopped,
        rate_changes=tuple(pool.stats.rate_changes),
        stop_error=pool.stop_reason,
        qa_resynthesized=pool.stats.qa_resynthesized,
        qa_budget_spent=pool.stats.qa_budget_spent,
        timeline=pool.stats.timeline.series(),
    )


async def _open_store(
    db: StoreThread, settings: Settings, stop: asyncio.Event | None
) -> Store | None:
    """The run's store; None if ``stop`` is set first (opening a shared store waits while
    its server is out of reach: a stopped run does not, the open carries on alone on the
    store's thread, whose end ``db.shutdown()`` asks for)."""
    opening = asyncio.ensure_future(
        db.open(
            settings.store_dir,
            url=settings.store_url,
            objects_url=settings.objects_url,
            max_segment_bytes=settings.max_segment_bytes,
        )
    )
    if stop is None:
        return await opening
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([opening, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if opening.done():
        return opening.result()
    opening.cancel()
    db.shutdown()
    return None


def _shared_pacing(settings: Settings) -> SharedPacing | None:
    """The account's pace shared with other workers in Redis, if ``settings`` say where."""
    if settings.pacing_url is None:
        return None
    from ..cluster.pacing import SharedPacing  # Redis only for those who share a pace

    return SharedPacing.for_settings(settings)


def _service(settings: Settings) -> str:
    """The service a run talks to, as the watchdog names it."""
    if settings.provider == "espeak":
        return "the offline voice"
    return urllib.parse.urlsplit(settings.base_url).netloc or settings.base_url


def _announce(progress: ProgressCallback, task: asyncio.Task[DocumentReport]) -> None:
    if not task.cancelled() and task.exception() is None:
        progress(ProgressEvent("document", report=task.result()))


async def _collect(
    tasks: list[asyncio.Task[DocumentReport]],
    pool: Pool,
    stop: asyncio.Event | None,
    grace: float,
    progress: ProgressCallback,
) -> list[DocumentReport | None]:
    """Wait for every document; on ``stop``, give in-flight work ``grace`` seconds."""
    for task in tasks:
        task.add_done_callback(functools.partial(_announce, progress))
    if not tasks:
        return []
    if stop is None:
        await asyncio.wait(tasks)
    else:
        stopper = asyncio.ensure_future(stop.wait())
        either: list[asyncio.Future[Any]] = [*tasks, stopper]
        while not stopper.done() and not all(task.done() for task in tasks):
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not all(task.done() for task in tasks):
            pool.stop()
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.wait(tasks)
    for task in tasks:  # a bug inside a document task surfaces here
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    # None for a document cut off by the stop
    return [None if task.cancelled() else task.result() for task in tasks]


def _as_document(source: str | Path | Document) -> Document:
    if isinstance(source, Document):
        return source
    if isinstance(source, Path):
        return load_document(source)
    return parse_text(source)


async def narrate(
    source: str | Path | Document,
    output: str | Path,
    settings: Settings | None = None,
    *,
    provider: Provider | None = None,
    on_progress: ProgressCallback | None = None,
) -> DocumentReport:
    """Narrate one text into one audiobook (its format from the output's extension).

    ``source`` is the text itself (a ``str``), a file (a :class:`~pathlib.Path`) or a
    :class:`Document`. Raises :class:`NarrationFailed` when the audiobook could not be
    made, and :class:`~narrator.errors.StopRun` for a rejected key or an empty account.
    """
    settings = settings or Settings(provider="espeak")
    document = await asyncio.to_thread(_as_document, source)  # reading a file blocks
    run = await narrate_many(
        [Work(document, Path(output))],
        settings,
        provider=provider,
        on_progress=on_progress,
    )
    if run.stop_error is not None:
        raise _fresh(run.stop_error)
    report = run.documents[0]
    if report.status not in (Status.DONE, Status.UP_TO_DATE):
        raise NarrationFailed(report)
    return report


def _fresh(error: StopRun) -> StopRun:
    """``error`` as raised here: the same object was raised in every worker that met it,
    each adding its frames to its traceback (a hundred lines for one unreachable host).
    The cause of an error whose message says what to do is dropped too; an internal
    failure keeps it, since there the cause is the clue."""
    error.__traceback__ = None
    if not isinstance(error, InternalFailure):
        error.__cause__ = None
        error.__suppress_context__ = True
    return error


def narrate_sync(
    source: str | Path | Document,
    output: str | Path,
    settings: Settings | None = None,
) -> DocumentReport:
    """:func:`narrate` for code that is not async."""
    return asyncio.run(narrate(source, output, settings))
