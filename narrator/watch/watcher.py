"""``narrator watch``: narrate what lands in an inbox folder, until stopped.

The file system tells us *that* something changed (``watchfiles``: inotify, FSEvents, ...);
we then look at the inbox as a whole, because a copy or an editor writes a file in several
steps. A file is read only once its size and modification time have stood still for
``settle`` seconds. Nothing here remembers what was narrated: the store does, so a
restarted watcher narrates everything again at no cost (up-to-date books are skipped,
finished segments are reused) and two watchers share the store's claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import watchfiles

from ..errors import ConfigError, NarratorError
from ..run.batch import Batch, find_batch, plan_works, read_batch
from ..run.pipeline import (
    DocumentReport,
    Plan,
    ProgressCallback,
    ProgressEvent,
    RunReport,
    Work,
    narrate_many,
)
from ..run.status import Status
from ..settings import Settings
from ..store.queue import QueueRow, record
from ..util.sanitize import clean_line
from .schedule import Pace, admit, keyed_chunks, unpaid

__all__ = ["WatchOptions", "is_temporary", "run_on_done", "watch"]

log = logging.getLogger("narrator")

_T = TypeVar("_T")


def _shown(text: str) -> str:
    """A name or message as a line of the log may show it (no control characters)."""
    return clean_line(text, limit=300)


# Names editors, browsers and copy tools give a file while it is being written.
_TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", ".swx", "~")


def is_temporary(path: Path) -> bool:
    """A hidden file, or one an editor or a copy is still writing under a temporary name."""
    name = path.name
    return name.startswith((".", "~", "#")) or name.lower().endswith(_TEMP_SUFFIXES)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How the inbox is watched; see ``narrator watch --help``."""

    settle: float = 2.0  # seconds a file must stand still before it is read
    fmt: str | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    on_done: str | None = None  # a shell command run once per finished book
    max_text_bytes: int | None = None
    # At most this many billing characters in any window of budget_window seconds,
    # counted from the store (so a restart does not reset it); None: no limit.
    budget_chars: int | None = None
    budget_window: float = 24 * 3600.0
    recheck: float = 60.0  # seconds between looks at documents waiting for the budget
    # Finish by this time (seconds since the epoch): start only documents estimated to
    # end before it, and stop at it. None: no deadline.
    deadline: float | None = None
    order: str = "shortest"  # shortest: the documents that cost least first; name: by path
    latency: float = 3.0  # assumed seconds per request until the watcher has measured it
    # A document whose unpaid billing characters are over this fails, unnarrated (the
    # CLI's --max-cost, else --confirm-above unless --yes, per document); None: no limit.
    max_doc_chars: int | None = None
    max_doc_why: str = "over the cost limit"


async def _refuse_costly(
    keyed: list[tuple[Plan, dict[str, int]]],
    costs: dict[int, tuple[int, int]],
    source: dict[int, str],
    options: WatchOptions,
    store: Path,
    report: Callable[[DocumentReport], None],
    url: str | None,
) -> list[tuple[Plan, dict[str, int]]]:
    """The documents within the per-document cost limit; the others fail, unpaid."""
    kept = []
    for work, keys in keyed:
        chars, requests = costs[id(work)]
        if options.max_doc_chars is None or chars <= options.max_doc_chars:
            kept.append((work, keys))
            continue
        why = f"{chars:,} billing characters in {requests} requests, {options.max_doc_why}"
        failed = DocumentReport(
            input=source[id(work.document)], output=str(work.output), title=work.document.title,
            status=Status.FAILED, chunks=len(keys), billing_characters=chars,
            audio_seconds=0.0, requests=0, retries=0, cached_chunks=0, errors=(why,),
        )  # fmt: skip
        report(failed)
        row = QueueRow(failed.input, failed.output, Status.FAILED, why)
        await asyncio.to_thread(record, store, [row], url=url)
    return kept


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:  # deleted between the listing and now
        return None
    return stat.st_size, stat.st_mtime_ns


def run_on_done(command: str, report: DocumentReport) -> None:
    """Run the done hook for one book; a failure is logged, never raised: the watcher
    goes on with the next book."""
    env = {
        **os.environ,
        "NARRATOR_BOOK": report.output,
        "NARRATOR_INPUT": report.input,
        "NARRATOR_TITLE": report.title,
    }
    try:
        done = subprocess.run(command, shell=True, env=env, check=False, timeout=3600)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("--on-done failed for %s: %s", report.output, exc)
        return
    if done.returncode != 0:
        log.error("--on-done exited %d for %s", done.returncode, report.output)


# How the watcher narrates a batch: works, settings, the stop event, the progress callback
# (a "document" event as each book is written).
Narrate = Callable[[list[Plan], Settings, asyncio.Event, ProgressCallback], Awaitable[RunReport]]


async def _narrate(
    works: list[Plan], settings: Settings, stop: asyncio.Event, progress: ProgressCallback
) -> RunReport:
    return await narrate_many(works, settings, stop=stop, on_progress=progress)


_WAITING = (-1, -1)  # the state of a file waiting for the budget
_POLL = 2.0  # seconds between looks at the inbox when notifications fail


class _Inbox:
    """Which files are new or changed and have stopped changing."""

    def __init__(self, folder: Path, options: WatchOptions) -> None:
        self.folder = folder
        self.options = options
        self.handled: dict[Path, tuple[int, int]] = {}  # narrated (or tried) in this state
        self.pending: dict[Path, tuple[tuple[int, int], float]] = {}  # state, seen since
        self.fresh: list[Path] = []  # new or changed since the last look, for the queue

    def scan(self, now: float) -> tuple[Batch | None, float | None]:
        """The files ready to read, and in how many seconds to look again for those still
        settling or waiting for the budget."""
        try:
            batch = find_batch(
                [str(self.folder)], include=self.options.include, exclude=self.options.exclude
            )
        except ConfigError:  # an empty inbox
            return None, None
        ready = []
        looks: list[float] = []
        for item in batch.items:
            path = Path(item.location)
            if is_temporary(path):
                continue
            sig = _signature(path)
            if sig is None or self.handled.get(path) == sig:
                continue
            state = self.pending.get(path)
            if state is not None and state[0] == _WAITING:
                if now < state[1]:
                    looks.append(state[1] - now)
                    continue
                since = now - self.options.settle  # the budget's turn: ready as it is
            elif state is None or state[0] != sig:
                self.pending[path] = (sig, now)
                self.fresh.append(path)
                since = now
            else:
                since = state[1]
            if now - since >= self.options.settle:
                ready.append(item)
                self.handled[path] = sig
                self.pending.pop(path, None)
            else:
                looks.append(since + self.options.settle - now)
        return (Batch(tuple(ready), True) if ready else None), min(looks, default=None)

    def wait_for_budget(self, path: Path, until: float) -> None:
        """Look at ``path`` again at ``until`` (monotonic), changed or not."""
        self.handled.pop(path, None)
        self.pending[path] = (_WAITING, until)


async def watch(
    inbox: Path,
    out: Path,
    settings: Settings,
    *,
    stop: asyncio.Event,
    options: WatchOptions = WatchOptions(),
    narrate: Narrate | None = None,
    on_report: Callable[[DocumentReport], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Narrate every document in ``inbox`` into ``out`` (mirroring its tree), then each
    new or changed one once it has stopped changing, until ``stop`` is set.

    A document deleted from the inbox keeps its book. Documents ready together go
    through one pool (one rate limiter, several documents in flight). ``on_ready`` is
    called once the inbox is being watched.
    """
    run = narrate or _narrate
    report = on_report or (lambda r: None)
    changed = asyncio.Event()
    changed.set()  # narrate what is there before anything changes

    async def listen() -> None:
        try:
            async for _ in watchfiles.awatch(
                inbox,
                stop_event=stop,
                watch_filter=lambda _change, path: not is_temporary(Path(path)),
                debounce=200,
                recursive=True,
            ):
                changed.set()
        except Exception as exc:  # a name it cannot decode, a limit on watches, ...
            if stop.is_set():
                return
            # The notifications failed (watchfiles cannot name a file whose name is not
            # UTF-8, say): look at the inbox every few seconds instead, never go deaf.
            inner: BaseException = exc
            while isinstance(inner, BaseExceptionGroup) and inner.exceptions:  # anyio's
                inner = inner.exceptions[0]
            why = str(inner).splitlines()[0] if str(inner) else type(inner).__name__
            log.warning(
                "watching %s for changes failed (%s); looking every %g s instead",
                _shown(str(inbox)), _shown(why), _POLL,
            )  # fmt: skip
            while not stop.is_set():
                changed.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _POLL)

    async def deadline(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        if not stop.is_set():
            log.warning("the --until deadline is reached: stopping; the rest waits for next time")
            stop.set()

    listener = asyncio.create_task(listen())
    timer = None if options.deadline is None else asyncio.create_task(deadline(options.deadline))
    pace = Pace(options.latency)
    box = _Inbox(inbox, options)
    # The first look must come after the watch is set up (awatch does it before its
    # first await), or a file arriving in between would wait for the next change.
    for _ in range(3):
        await asyncio.sleep(0)
    if on_ready is not None:
        on_ready()
    try:
        while not stop.is_set():
            changed.clear()
            batch, next_look = box.scan(time.monotonic())
            fresh = [QueueRow(str(p), "", "waiting", "changing or just arrived") for p in box.fresh]
            box.fresh.clear()
            await _note(settings.store_dir, fresh, settings.store_url)
            if batch is not None:
                try:
                    waiting = await _narrate_batch(
                        batch, out, settings, stop, options, run, report, pace
                    )
                except _Abandoned:
                    break
                except Exception as exc:  # never one batch stops the service
                    names = ", ".join(_shown(item.location) for item in batch.items[:3])
                    log.error("could not narrate %s: %s", names, _shown(str(exc)))
                    log.debug("why", exc_info=exc)
                    waiting = []
                for path in waiting:  # looked at again once the window has moved on
                    box.wait_for_budget(path, time.monotonic() + options.recheck)
                continue  # files may have arrived meanwhile
            if listener.done():
                listener.result()  # the watch itself failed: say why
                raise ConfigError(f"stopped watching {inbox}")
            waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=next_look, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    finally:
        stop.set()
        for task in (listener, timer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


# Seconds the hooks of finished books are waited for once a stop is asked for.
_HOOK_GRACE = 3.0


class _Abandoned(Exception):
    """A stop was asked for while a stage ran on its own thread: it is left behind."""


async def _off_loop(
    fn: Callable[..., _T], *args: Any, stop: asyncio.Event | None, seconds: float | None = None
) -> _T:
    """``fn(*args)`` on a daemon thread of its own: a stage that never ends neither
    blocks the event loop nor holds the process at exit. Raises :class:`_Abandoned` when
    ``stop`` is set first, ``TimeoutError`` after ``seconds``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed to the loop, raised there
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="narrator-watch-stage", daemon=True).start()
    waiters: list[asyncio.Future[Any]] = [future]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters[1:]:
            waiter.cancel()
    if future.done():
        return future.result()
    future.cancel()
    if stop is not None and stop.is_set():
        raise _Abandoned
    raise TimeoutError


async def _run_apart(
    works: list[Plan],
    settings: Settings,
    stop: asyncio.Event,
    progress: ProgressCallback,
    run: Narrate,
) -> list[tuple[list[Plan], RunReport | Exception]]:
    """Narrate ``works`` together; should that fail as a whole (an error that is no
    document's in particular, or one document's that ends the run), each is narrated on
    its own, so that only the one at fault fails. What was paid for is in the store:
    nothing is paid twice."""
    try:
        return [(works, await run(works, settings, stop, progress))]
    except Exception as exc:
        log.debug("the batch failed as a whole", exc_info=exc)
        if len(works) == 1 or stop.is_set():
            return [(works, exc)]
    results: list[tuple[list[Plan], RunReport | Exception]] = []
    for work in works:
        if stop.is_set():
            break
        try:
            results.append(([work], await run([work], settings, stop, progress)))
        except Exception as exc:
            log.debug("%s failed", _shown(work.document.source), exc_info=exc)
            results.append(([work], exc))
    return results


async def _note(store: Path, rows: Sequence[QueueRow], url: str | None) -> None:
    """Write queue rows for ``status`` (in the store at ``url``, if given); a row that
    cannot be written is logged, never fatal (the queue is a display, the store's
    segments are what counts)."""
    try:
        await asyncio.to_thread(record, store, list(rows), url=url)
    except (sqlite3.Error, OSError, UnicodeError, ValueError) as exc:
        log.warning("the queue shown by `narrator status` was not updated (%s)", exc)


async def _fail(
    store: Path,
    url: str | None,
    report: Callable[[DocumentReport], None],
    source: str,
    output: str,
    why: str,
) -> None:
    """Fail one document, with why: its line and its queue row; the watcher goes on."""
    failed = DocumentReport(
        input=source, output=output, title="", status=Status.FAILED, chunks=0,
        billing_characters=0, audio_seconds=0.0, requests=0, retries=0, cached_chunks=0,
        errors=(why,),
    )  # fmt: skip
    report(failed)
    await _note(store, [QueueRow(source, output, Status.FAILED, why)], url)


async def _narrate_batch(
    batch: Batch,
    out: Path,
    settings: Settings,
    stop: asyncio.Event,
    options: WatchOptions,
    run: Narrate,
    report: Callable[[DocumentReport], None],
    pace: Pace,
) -> list[Path]:
    """Narrate the documents of ``batch``; those the budget cannot pay for yet, or that
    would not finish by the deadline, are left out and returned (their paths), to be
    tried again later."""
    kwargs = {} if options.max_text_bytes is None else {"max_text_bytes": options.max_text_bytes}
    loaded = await read_batch(batch, **kwargs)  # type: ignore[arg-type]
    store, url = settings.store_dir, settings.store_url
    for unread in loaded.unread:
        report(unread)
        row = QueueRow(unread.input, "", unread.status, "; ".join(unread.errors))
        await _note(store, [row], url)
    works = plan_works(batch, loaded, str(out), options.fmt)
    if not works:
        return []
    source = {id(doc): item.location for item, doc in loaded.documents}
    # Each document is split once, its plan narrated as it is; one whose respellings run
    # over their budget (a lexicon pattern that never ends) fails alone, with why.
    unsplit: list[tuple[Work, DocumentReport]] = []
    # Planning runs on a thread a stop leaves behind: a document stuck in its lexicon's
    # patterns (however long its budget) or in the splitter never holds up a SIGTERM.
    keyed = await keyed_chunks(
        works, settings, unsplit, off_loop=lambda plan: _off_loop(plan, stop=stop)
    )
    for work, failed in unsplit:
        why = "; ".join(failed.errors)
        await _fail(store, url, report, source[id(work.document)], str(work.output), why)
    if not keyed:
        return []
    costs = await asyncio.to_thread(unpaid, store, keyed, url=url)
    if options.order == "shortest":  # the most books finished by morning
        keyed = sorted(keyed, key=lambda pair: costs[id(pair[0])][0])
    else:
        keyed = sorted(keyed, key=lambda pair: source[id(pair[0].document)])
    if options.max_doc_chars is not None:
        keyed = await _refuse_costly(keyed, costs, source, options, store, report, url)
    plans = [plan for plan, _ in keyed]
    waiting: list[Plan] = []
    reasons: dict[int, str] = {}
    if options.budget_chars is not None:
        plans, held = await admit(
            keyed,
            settings,
            budget_chars=options.budget_chars,
            window=options.budget_window,
            costs=costs,
        )
        waiting += held
        reasons.update((id(w), "waiting for budget") for w in held)
    if options.deadline is not None:
        plans, late = pace.fit(plans, costs, settings, options.deadline - time.time())
        waiting += late
        reasons.update((id(w), "waiting for deadline") for w in late)
    admitted = {id(plan) for plan in plans}
    rows = [
        QueueRow(
            source[id(work.document)],
            str(work.output),
            "in progress" if id(work) in admitted else reasons[id(work)],
            keys=tuple(keys),
        )
        for work, keys in keyed
    ]
    await _note(store, rows, url)
    if plans:
        ended = {row.output: row for row in rows}
        reported: set[str] = set()
        finishing: set[asyncio.Task[None]] = set()

        async def finish(document: DocumentReport) -> None:
            """Say a book is done, note it in the queue and run its hook: as soon as it
            is written, not when the longest book of its batch is."""
            report(document)
            started = ended.get(document.output)
            if started is not None:
                detail = "; ".join(document.errors)
                done = QueueRow(
                    started.input, started.output, document.status, detail, started.keys
                )
                await _note(store, [done], url)
            if options.on_done and document.status is Status.DONE:
                # On a thread of its own: a hook that runs long never holds up a stop.
                with contextlib.suppress(_Abandoned):
                    await _off_loop(run_on_done, options.on_done, document, stop=None)

        def on_progress(event: ProgressEvent) -> None:
            if event.kind == "document" and event.report is not None:
                reported.add(event.report.output)
                task = asyncio.create_task(finish(event.report))
                finishing.add(task)
                task.add_done_callback(finishing.discard)

        began = time.monotonic()
        try:
            results = await _run_apart(plans, settings, stop, on_progress, run)
        finally:
            if finishing:
                # Their lines and queue rows are quick; a hook is given a few seconds
                # once a stop is asked for, then left to finish on its own.
                await asyncio.wait(finishing, timeout=None if not stop.is_set() else _HOOK_GRACE)
        requests = 0
        for group, outcome in results:
            if isinstance(outcome, BaseException):  # that document (or group) fails, with why
                why = _shown(str(outcome)) or type(outcome).__name__
                if not isinstance(outcome, NarratorError | OSError):
                    why = f"internal error: {type(outcome).__name__}: {why}"
                for plan in group:
                    if str(plan.output) not in reported:
                        await _fail(
                            store, url, report, source[id(plan.document)], str(plan.output), why
                        )
                continue
            requests += outcome.requests
            for document in outcome.documents:  # up to date, or cut off by a stop
                if document.output not in reported:
                    await finish(document)
        pace.measured(requests, time.monotonic() - began)
    return [Path(source[id(work.document)]) for work in waiting]
