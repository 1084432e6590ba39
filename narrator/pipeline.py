"""The pipeline: documents in, one audiobook per document out.

It composes the stages: split each document, send every chunk of every document
through one shared pool, and stitch a document as soon as its last chunk is in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import math
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .book.audiobook import make_audiobook
from .book.encode import ChapterMark, format_of
from .book.stitch import Piece
from .chunks.language import resolve_language
from .chunks.split import Chunk, split_document
from .errors import ChunkFailed, DiskFull, NarrationFailed, NarratorError, Stopped, StopRun
from .inputs.documents import Document, load_document, parse_text
from .settings import Settings
from .status import Status
from .synth.pool import Job, Outcome, Pool
from .synth.providers import Provider, make_provider
from .synth.quality import Gate
from .synth.sanity import max_seconds
from .synth.store import Store, segment_key
from .synth.watchdog import watch
from .util.diskspace import BYTES_PER_CHAR, check_room, disk_full, is_disk_full

log = logging.getLogger("narrator")


@dataclass(frozen=True, slots=True)
class Work:
    """One document and where its audiobook goes."""

    document: Document
    output: Path


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What the progress callback receives.

    ``kind`` is ``planned`` (totals for the run), ``chunk`` (one chunk finished, or
    failed) or ``document`` (an audiobook was written, or a document failed).
    """

    kind: str
    chunks: int = 0
    characters: int = 0
    cached: bool = False
    report: DocumentReport | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class Flag:
    """A segment the quality gate still found bad after its last attempt, kept in the book.

    ``chunk`` counts from 1; ``start`` is where it begins in the finished audiobook, in
    seconds (None when the audiobook was not written); ``measured`` and ``expected`` are
    seconds of speech.
    """

    chunk: int
    text: str
    kind: str  # silent, cut or runaway
    reason: str
    measured: float
    expected: float
    attempts: int
    start: float | None = None


@dataclass(frozen=True, slots=True)
class DocumentReport:
    """How one document went. ``status``: done, up-to-date (made before from the same
    text and settings), failed, skipped (nothing to narrate) or stopped."""

    input: str
    output: str
    title: str
    status: Status
    chunks: int
    billing_characters: int
    audio_seconds: float
    requests: int
    retries: int
    cached_chunks: int
    errors: tuple[str, ...] = ()
    chapters: tuple[ChapterMark, ...] = ()  # each chapter's title and start, in seconds
    files: tuple[str, ...] = ()  # the audio files written: one, or one per part
    flagged: tuple[Flag, ...] = ()  # segments the quality gate flagged

    @property
    def ok(self) -> bool:
        return self.status.ok


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a whole run went."""

    documents: tuple[DocumentReport, ...]
    requests: int
    retries: int
    throttled: int
    resynthesized: int
    seconds: float
    stopped: str | None = None
    rate_changes: tuple[tuple[float, float], ...] = ()
    stop_error: StopRun | None = field(default=None, compare=False, repr=False)
    qa_resynthesized: int = 0  # bad segments synthesized again (each billed again)
    qa_budget_spent: bool = False

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(d.ok for d in self.documents)


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


async def _narrate_one(
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
            flagged=_flags(chunks, outcomes, starts),
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
        flags = _flags(chunks, outcomes, ())
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


def _flags(
    chunks: Sequence[Chunk], outcomes: Sequence[Outcome], starts: Sequence[float]
) -> tuple[Flag, ...]:
    """The flagged segments of a document, with their start in its audiobook if known."""
    flags = []
    for n, (chunk, outcome) in enumerate(zip(chunks, outcomes, strict=False)):
        if not outcome.flagged or outcome.verdict is None:
            continue
        verdict = outcome.verdict
        flags.append(
            Flag(
                chunk=chunk.index + 1,
                text=chunk.text,
                kind=verdict.kind,
                reason=verdict.reason,
                measured=round(verdict.measured, 2),
                expected=round(verdict.expected, 2),
                attempts=outcome.attempts,
                start=round(starts[n], 3) if n < len(starts) else None,
            )
        )
    return tuple(flags)


async def narrate_many(
    works: Sequence[Work],
    settings: Settings,
    *,
    provider: Provider | None = None,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    grace: float = 5.0,
) -> RunReport:
    """Narrate several documents through one pool and one rate limiter.

    Setting ``stop`` starts no new requests; requests in flight get ``grace`` seconds
    to finish, and what finished is kept for the next run. Raises
    :class:`~narrator.errors.DiskFull` before any request when the cache or an output
    folder lacks the room the text will need; a disk that fills during the run, or no
    chunk progressing for ``settings.stall_seconds``, stops it (``RunReport.stop_error``).
    """
    began = time.monotonic()
    progress = on_progress or (lambda event: None)
    own_provider = provider is None
    provider = provider or make_provider(settings)  # opens no connection until used
    # Chunks fit the provider's limit, counted its way, whatever --max-chars says.
    max_chars = min(settings.max_chars, provider.max_chars)
    plans = [
        (
            work,
            split_document(
                work.document,
                max_chars=max_chars,
                lang=resolve_language(work.document, settings.lang),
                count=provider.billing_chars,
            ),
        )
        for work in works
    ]
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.store_dir)
    fingerprints = {work.output: book_fingerprint(provider, settings, c) for work, c in plans}

    def key_of(chunk: Chunk) -> str:
        return segment_key(provider=provider.identity, voice=settings.voice, text=chunk.text)

    current = [] if settings.force else _up_to_date(plans, store, fingerprints, key_of)
    done_before = {report.output for report in current}
    plans = [(work, chunks) for work, chunks in plans if str(work.output) not in done_before]
    try:
        check_room(_room_needed(plans, store, provider, settings))
    except DiskFull:
        store.close()
        if own_provider:
            await provider.aclose()
        raise
    progress(
        ProgressEvent(
            "planned",
            chunks=sum(len(chunks) for _, chunks in plans),
            characters=sum(c.billing_chars for _, chunks in plans for c in chunks),
        )
    )
    total = sum(len(chunks) for _, chunks in plans)
    # A bad segment may take qa_retries re-syntheses whatever the share says.
    budget = max(settings.qa_retries, math.ceil(settings.qa_budget / 100 * total))
    try:
        pool = Pool(
            provider,
            store,
            voice=settings.voice,
            concurrency=settings.concurrency,
            rpm=settings.rpm,
            retries=settings.retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            adaptive=settings.adaptive_rate,
            max_segment_bytes=settings.max_segment_bytes,
            lease=2 * settings.request_timeout + 60,  # one attempt: a request and a download
            gate=Gate() if settings.qa != "off" else None,
            qa_retries=settings.qa_retries,
            qa_budget=budget,
        )
        async with pool:
            dog = asyncio.create_task(
                watch(pool, seconds=settings.stall_seconds, what=_service(settings)),
                name="narrator-watchdog",
            )
            tasks = [
                asyncio.create_task(_narrate_one(pool, provider, work, chunks, settings, progress))
                for work, chunks in plans
            ]
            try:
                collected = await _collect(tasks, pool, stop, grace, progress)
            finally:
                dog.cancel()
            # A document cut off by the stop is still one of the run's documents.
            reports = [
                report or _stopped(work, chunks)
                for report, (work, chunks) in zip(collected, plans, strict=True)
            ]
        for report in reports:
            fingerprint = fingerprints.get(Path(report.output))
            if report.status is Status.DONE and fingerprint is not None:
                try:
                    store.record_book(
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
        if isinstance(pool.stop_reason, DiskFull):
            # Say how much the rest needs in the full folder, now that some of it is done.
            full = Path(pool.stop_reason.folder)
            needs = _room_needed(plans, store, provider, settings)
            same = [n for folder, n in needs.items() if _same_filesystem(folder, full)]
            pool.stop_reason = disk_full(full, sum(same) or None)
    finally:
        if own_provider:
            await provider.aclose()
        store.close()
    stopped = str(pool.stop_reason) if pool.stop_reason else None
    if stop is not None and stop.is_set() and stopped is None:
        stopped = "interrupted"
    order = {str(work.output): n for n, work in enumerate(works)}
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
    )


def _room_needed(
    plans: Sequence[tuple[Work, list[Chunk]]], store: Store, provider: Provider, settings: Settings
) -> dict[Path, int]:
    """Bytes each folder will need, estimated from the text: the cache for the audio not
    yet in it, each output folder for its books (the stitched WAV, a normalised copy,
    the encoded file, all on disk at once while a book is encoded)."""
    needs: dict[Path, int] = {}
    missing: dict[str, int] = {}
    for _, chunks in plans:
        for chunk in chunks:
            key = segment_key(provider=provider.identity, voice=settings.voice, text=chunk.text)
            if key not in missing and store.lookup(key) is None:
                missing[key] = chunk.billing_chars
    cache = settings.store_dir.absolute()
    needs[cache] = sum(missing.values()) * BYTES_PER_CHAR
    options = settings.audiobook
    for work, chunks in plans:
        wav = sum(c.billing_chars for c in chunks) * BYTES_PER_CHAR
        try:
            fmt = format_of(work.output, options.format)
        except NarratorError:
            fmt = "wav"
        encoded = wav if fmt in ("wav", "flac") else wav // 4
        folder = work.output.absolute().parent
        needs[folder] = needs.get(folder, 0) + wav * (2 if options.normalize else 1) + encoded
    return needs


def _service(settings: Settings) -> str:
    """The service a run talks to, as the watchdog names it."""
    if settings.provider == "espeak":
        return "the offline voice"
    return urllib.parse.urlsplit(settings.base_url).netloc or settings.base_url


def _same_filesystem(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return a == b


def book_fingerprint(provider: Provider, settings: Settings, chunks: Sequence[Chunk]) -> str:
    """What an audiobook is made from: its chunks' texts and chapters, the provider, and
    every setting but those that only change how fast it is made."""
    made_with = {
        name: str(value)
        for name, value in dataclasses.asdict(settings).items()
        if name not in _RUN_ONLY_SETTINGS
    }
    blob = json.dumps(
        [provider.identity, made_with, [(c.chapter, c.text) for c in chunks]], ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# Settings that change how a run goes, not what it makes; changing them keeps a book current.
# The quality gate's are among them: a book already written is judged by `narrator check`
# (and upgrading to the gate leaves every fingerprint, so every book, as it was).
_RUN_ONLY_SETTINGS = frozenset(
    (
        "api_key", "concurrency", "rpm", "cache_dir", "retries", "backoff_base", "backoff_max",
        "adaptive_rate", "request_timeout", "max_segment_bytes", "force", "lang", "max_chars",
        "allow_hosts", "allow_private_network", "stall_timeout", "qa", "qa_retries",
        "qa_budget",
    )
)  # fmt: skip


def _up_to_date(
    plans: Sequence[tuple[Work, list[Chunk]]],
    store: Store,
    fingerprints: dict[Path, str],
    key_of: Callable[[Chunk], str],
) -> list[DocumentReport]:
    """Reports for the documents whose audiobook is already made from the same chunks
    (with the segments the quality gate flagged in it; their start times are not kept)."""
    current = []
    for work, chunks in plans:
        if not chunks:
            continue
        book = store.current_book(work.output, fingerprints[work.output])
        if book is None:
            continue
        log.info("%s: up to date, skipped (--force makes it again)", work.output)
        flagged = store.flagged([key_of(chunk) for chunk in chunks])
        flags = [
            Flag(
                chunk=chunk.index + 1,
                text=chunk.text,
                kind=stored.verdict["kind"],
                reason=stored.verdict["reason"],
                measured=round(stored.verdict["measured"], 2),
                expected=round(stored.verdict["expected"], 2),
                attempts=stored.attempts,
            )
            for chunk in chunks
            if (stored := flagged.get(key_of(chunk))) is not None
        ]
        current.append(
            DocumentReport(
                input=work.document.source,
                output=str(work.output),
                title=work.document.title,
                status=Status.UP_TO_DATE,
                chunks=len(chunks),
                billing_characters=sum(c.billing_chars for c in chunks),
                audio_seconds=book.seconds,
                requests=0,
                retries=0,
                cached_chunks=0,
                # parts sit beside the output: named as the output was given
                files=tuple(str(work.output.with_name(f.name)) for f in book.files),
                flagged=tuple(flags),
            )
        )
    return current


def _stopped(work: Work, chunks: Sequence[Chunk]) -> DocumentReport:
    """The report of a document the run stopped before it finished."""
    return DocumentReport(
        input=work.document.source,
        output=str(work.output),
        title=work.document.title,
        status=Status.STOPPED,
        chunks=len(chunks),
        billing_characters=sum(c.billing_chars for c in chunks),
        audio_seconds=0.0,
        requests=0,
        retries=0,
        cached_chunks=0,
        errors=("the run stopped before this document finished",),
    )


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
    run = await narrate_many(
        [Work(_as_document(source), Path(output))],
        settings,
        provider=provider,
        on_progress=on_progress,
    )
    if run.stop_error is not None:
        raise run.stop_error
    report = run.documents[0]
    if report.status not in (Status.DONE, Status.UP_TO_DATE):
        raise NarrationFailed(report)
    return report


def narrate_sync(
    source: str | Path | Document,
    output: str | Path,
    settings: Settings | None = None,
) -> DocumentReport:
    """:func:`narrate` for code that is not async."""
    return asyncio.run(narrate(source, output, settings))
