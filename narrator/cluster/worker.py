"""``narrator worker``'s engine: Dramatiq's worker threads take document jobs off the
queue, and each is narrated by today's pipeline (:func:`narrator.run.pipeline.narrate_many`)
on one event loop shared by the documents this worker holds.

A job is checked first (:func:`narrator.cluster.jobs.parse_job`), then its book is written
below DEST, which must be inside the worker's own output root. A document that fails is
tried again later (Dramatiq's Retries, a bounded number of tries), then marked failed with
why; a job whose worker died more often than that is failed too, so no document loops
forever. :meth:`ClusterWorker.stop` (SIGTERM) starts no new request, lets those in flight
finish, hands the unfinished documents back to the queue (not a failed try) and returns.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.errors import Retry
from dramatiq.middleware import AsyncIO, CurrentMessage, Retries

from ..errors import JobRefused, NarratorError
from ..inputs.documents import Document
from ..run.pipeline import ProgressEvent, Work, narrate_many
from ..run.status import Status
from ..settings import Settings
from ..store.s3 import upload_book
from ..util.s3url import parse_url
from ..util.sanitize import clean_line
from .jobs import apply_options, parse_job
from .queue import ACTOR, QUEUE, QueueConfig, note, worker_name

__all__ = ["ClusterWorker", "WorkerConfig"]

log = logging.getLogger("narrator")

# Checks a document against the worker's own spending guard: None, or why not.
Guard = Callable[[Document, Settings], str | None]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """A worker: its queue, its own settings (the key, the endpoint, the pace), the
    folder it writes books under (``root``), how many documents it holds at once, how
    many tries a document gets, and the seconds requests in flight get on a stop."""

    queue: QueueConfig
    settings: Settings
    root: Path
    documents: int = 2
    tries: int = 3
    grace: float = 5.0
    guard: Guard | None = None
    # -o s3://BUCKET/PREFIX?endpoint=...: books go to object storage (written under the
    # cache first); a job's DEST must be below it, its endpoint is this one.
    root_url: str | None = None
    retry_backoff: float = 1.0  # seconds before a second try, doubling (jittered)


class _TryFailed(Retry):
    """One try of a document failed: Dramatiq's Retries gives it another, later."""


class ClusterWorker:
    """One ``narrator worker`` process: start, then stop (from a signal handler's thread)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.name = worker_name()
        self.client = config.queue.client()
        self.broker = config.queue.broker(
            middleware=[
                AsyncIO(),
                CurrentMessage(),
                Retries(
                    max_retries=config.tries - 1,
                    min_backoff=int(config.retry_backoff * 1000),
                    max_backoff=300_000,
                ),
            ]
        )
        self.actor = dramatiq.actor(  # type: ignore[call-overload]
            self._run, broker=self.broker, actor_name=ACTOR, queue_name=QUEUE
        )
        self.worker: Any = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._progress: dict[str, tuple[int, int]] = {}  # job id -> (done, chunks)
        self._reporter = threading.Thread(
            target=self._report, name="narrator-progress", daemon=True
        )
        self._unreachable = False

    def start(self) -> None:
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.config.documents)
        # Hold no more documents than are narrated: the rest stay for other workers.
        self.worker.queue_prefetch = self.config.documents
        self.worker.start()
        self._reporter.start()

    def stop(self, timeout: float = 600.0) -> None:
        """Stop taking documents; those in progress finish their requests in flight and
        go back to the queue."""
        self.stopping.set()
        with self._lock:
            for loop, event in self._stops:
                loop.call_soon_threadsafe(event.set)
        if self.worker is not None:
            self.worker.stop(timeout=int(timeout * 1000))
        self.broker.close()

    # --- one job -------------------------------------------------------------------

    def _run(self, data: Any) -> None:
        """The actor: runs on one of Dramatiq's worker threads."""
        message = CurrentMessage.get_current_message()
        assert message is not None
        tries = int(message.options.get("retries", 0)) + 1
        job_id = (
            data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        )
        if self.stopping.is_set():
            self._hand_back(message, job_id)
            return
        try:
            job = parse_job(data, max_text_bytes=self.config.settings.max_text_bytes)
        except JobRefused as exc:
            log.warning("%s", clean_line(str(exc)))
            if job_id is not None and len(job_id) == 32 and job_id.isalnum():
                self._note(job_id, state="failed", error=str(exc), worker=self.name)
            return  # acknowledged: a refused job is never tried again
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        loop_thread.run_coroutine(self._narrate(job, message, tries))

    def _hand_back(self, message: Any, job_id: str | None) -> None:
        """Put the message back on the queue as it came (its tries unchanged)."""
        self.broker.enqueue(message.copy())
        if job_id is not None:
            self._note(job_id, state="queued", worker="", error="handed back by a stopping worker")

    def _where(self, job: Any) -> tuple[Path, str | None]:
        """Where the book is written, and the ``s3://`` DEST it then goes to (None for a
        folder); :class:`JobRefused` unless DEST is inside the worker's own -o."""
        dest, output = job.dest, job.output
        if self.config.root_url is not None:  # object storage: written here, then put
            return self._staging(job), _inside_bucket(dest, self.config.root_url)
        if "://" in dest:
            raise JobRefused(
                f"job refused: dest: {clean_line(dest)} is not a folder below this worker's -o"
            )
        root = self.config.root.resolve()
        folder = Path(dest)
        target = (folder / output).resolve()
        if not folder.is_absolute() or not folder.resolve().is_relative_to(root):
            raise JobRefused(
                f"job refused: dest: {clean_line(dest)} is not inside this worker's -o {root}"
            )
        if not target.is_relative_to(folder.resolve()):
            raise JobRefused(f"job refused: output: {clean_line(output)} leads outside DEST")
        return target, None

    def _staging(self, job: Any) -> Path:
        """Where a book bound for object storage is written first (under the cache)."""
        return Path(self.config.settings.store_dir, "cluster-books", job.id, job.output)

    async def _upload(self, job: Any, target: Path, url: str) -> None:
        """Put the book and its sidecars (every file written beside it) under ``url``."""
        folder = self._staging(job).parents[len(Path(job.output).parts) - 1]
        files = sorted(p for p in target.parent.iterdir() if p.is_file())
        try:
            await asyncio.to_thread(upload_book, files, url, job.output)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    async def _narrate(self, job: Any, message: Any, tries: int) -> None:
        key = self.config.queue.job_key(job.id)
        try:
            starts = await asyncio.to_thread(self.client.hincrby, key, "starts", 1)
        except Exception as exc:  # the state is for people; the job goes on without it
            self._warn_unreachable(exc)
            starts = 1
        if starts > self.config.tries + 3:  # its workers died on it again and again
            why = f"given up after {starts - 1} starts: every worker holding it stopped or died"
            self._note(job.id, state="failed", error=why, worker=self.name)
            log.warning("%s: %s", clean_line(job.name), why)
            return
        try:
            target, upload_to = self._where(job)
            settings = apply_options(self.config.settings, job.options)
            if self.config.guard is not None:
                refused = await asyncio.to_thread(self.config.guard, job.document, settings)
                if refused:
                    raise JobRefused(f"job refused: {refused}")
        except JobRefused as exc:
            log.warning("%s: %s", clean_line(job.name), clean_line(str(exc)))
            self._note(job.id, state="failed", error=str(exc), worker=self.name, tries=tries)
            return
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        self._note(job.id, state="running", worker=self.name, tries=tries, error="", done=0)
        log.info("%s: narrating (try %d of %d)", clean_line(job.name), tries, self.config.tries)
        stop = asyncio.Event()
        entry = (asyncio.get_running_loop(), stop)
        with self._lock:
            self._stops.append(entry)
            if self.stopping.is_set():
                stop.set()
        done, chunks = 0, 0

        def progress(event: ProgressEvent) -> None:
            nonlocal done, chunks
            if event.kind == "planned":
                chunks = event.chunks
            elif event.kind == "chunk":
                done += 1
            self._progress[job.id] = (done, chunks)

        try:
            run = await narrate_many(
                [Work(job.document, target)],
                settings,
                on_progress=progress,
                stop=stop,
                grace=self.config.grace,
            )
        except NarratorError as exc:  # refused before anything was sent (disk, store)
            self._fail_try(job, tries, str(exc))
        finally:
            with self._lock:
                self._stops.remove(entry)
            self._progress.pop(job.id, None)
        report = run.documents[0] if run.documents else None
        if stop.is_set() and (report is None or report.status is Status.STOPPED):
            await asyncio.to_thread(self._hand_back, message, job.id)
            log.info("%s: handed back to the queue", clean_line(job.name))
            return
        if report is not None and report.status in (Status.DONE, Status.UP_TO_DATE):
            if upload_to is not None:
                try:
                    await self._upload(job, target, upload_to)
                except (NarratorError, OSError) as exc:
                    self._fail_try(job, tries, f"the book could not be put in {upload_to}: {exc}")
            self._note(job.id, state="done", done=report.chunks, chunks=report.chunks,
                       worker=self.name, error="", requests=report.requests)  # fmt: skip
            log.info(
                "%s: done (%d chunks, %d requests)",
                clean_line(job.name), report.chunks, report.requests,
            )  # fmt: skip
            return
        why = (
            str(run.stop_error)
            if run.stop_error is not None
            else (report.errors[0] if report is not None and report.errors else "failed")
        )
        self._fail_try(job, tries, why)

    def _fail_try(self, job: Any, tries: int, why: str) -> None:
        final = tries >= self.config.tries
        state = "failed" if final else "retrying"
        shown = clean_line(why, limit=300)
        self._note(job.id, state=state, worker="" if not final else self.name, tries=tries,
                   error=shown)  # fmt: skip
        log.warning(
            "%s: try %d of %d failed: %s%s",
            clean_line(job.name), tries, self.config.tries, shown,
            "" if final else "; it will be tried again",
        )  # fmt: skip
        raise _TryFailed(shown)

    # --- the state status reads -------------------------------------------------------

    def _note(self, job_id: str, **fields: Any) -> None:
        try:
            note(self.client, self.config.queue, job_id, **fields)
        except Exception as exc:  # redis' errors; the job itself goes on
            self._warn_unreachable(exc)
        else:
            self._reached()

    def _reached(self) -> None:
        if self._unreachable:
            log.warning("the queue's Redis at %s is back", self.config.queue.shown)
        self._unreachable = False

    def _warn_unreachable(self, exc: BaseException) -> None:
        if not self._unreachable:
            log.warning(
                "the queue's Redis at %s is unreachable (%s); waiting for it",
                self.config.queue.shown,
                clean_line(type(exc).__name__),
            )
        self._unreachable = True

    def _report(self) -> None:
        """Twice a second, each document's chunks done, where status reads them."""
        sent: dict[str, tuple[int, int]] = {}
        ticks = 0
        while not self.stopping.wait(0.5):
            ticks += 1
            if ticks % 4 == 0:  # every 2 s: is the queue there? (said once each way)
                try:
                    self.client.ping()
                except Exception as exc:  # redis' errors
                    self._warn_unreachable(exc)
                else:
                    self._reached()
            for job_id, progress in list(self._progress.items()):
                if sent.get(job_id) != progress:
                    done, chunks = progress
                    self._note(job_id, done=done, chunks=chunks)
                    sent[job_id] = progress


def _inside_bucket(dest: str, root_url: str) -> str:
    """The URL a book bound for ``dest`` is put at: ``dest``'s bucket and prefix, which must
    be below the worker's ``root_url``, with the worker's endpoint (a job names none)."""
    root = parse_url(root_url, setting="-o")
    parts = urllib.parse.urlsplit(dest)
    if parts.scheme.lower() != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        raise JobRefused(
            f"job refused: dest: {clean_line(dest)} is not s3://BUCKET/PREFIX (a job names no "
            "endpoint: the worker's own is used)"
        )
    try:
        wanted = parse_url(dest, setting="dest")
    except NarratorError as exc:
        raise JobRefused(f"job refused: {clean_line(str(exc))}") from None
    inside = root.prefix.split("/") if root.prefix else []
    if wanted.bucket != root.bucket or wanted.prefix.split("/")[: len(inside)] != inside:
        raise JobRefused(f"job refused: dest: {clean_line(dest)} is not inside this worker's -o")
    query = urllib.parse.urlsplit(root_url).query
    return f"s3://{wanted.bucket}/{wanted.prefix}" + (f"?{query}" if query else "")
