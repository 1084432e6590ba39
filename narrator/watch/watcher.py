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
import dataclasses
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from ..errors import ConfigError
from ..run.batch import Batch, find_batch, plan_works, read_batch
from ..run.pipeline import DocumentReport, Plan, RunReport, Work, narrate_many
from ..run.status import Status
from ..settings import Settings
from ..store.queue import QueueRow, record
from .schedule import Pace, admit, keyed_chunks, unpaid

__all__ = ["WatchOptions", "is_temporary", "run_on_done", "watch"]

log = logging.getLogger("narrator")

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
        await asyncio.to_thread(record, store, [row])
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


_WAITING = (-1, -1)  # the state of a file waiting for the budget


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
    narrate: Callable[[list[Plan], Settings, asyncio.Event], Awaitable[RunReport]] | None = None,
    on_report: Callable[[DocumentReport], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Narrate every document in ``inbox`` into ``out`` (mirroring its tree), then each
    new or changed one once it has stopped changing, until ``stop`` is set.

    A document deleted from the inbox keeps its book. Documents ready together go
    through one pool (one rate limiter, several documents in flight). ``on_ready`` is
    called once the inbox is being watched.
    """
    run = narrate or (lambda works, s, ev: narrate_many(works, s, stop=ev))
    report = on_report or (lambda r: None)
    changed = asyncio.Event()
    changed.set()  # narrate what is there before anything changes

    async def listen() -> None:
        async for _ in watchfiles.awatch(
            inbox,
            stop_event=stop,
            watch_filter=lambda _change, path: not is_temporary(Path(path)),
            debounce=200,
            recursive=True,
        ):
            changed.set()

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
            await asyncio.to_thread(record, settings.store_dir, fresh)
            if batch is not None:
                waiting = await _narrate_batch(
                    batch, out, settings, stop, options, run, report, pace
                )
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


async def _narrate_batch(
    batch: Batch,
    out: Path,
    settings: Settings,
    stop: asyncio.Event,
    options: WatchOptions,
    run: Callable[[list[Plan], Settings, asyncio.Event], Awaitable[RunReport]],
    report: Callable[[DocumentReport], None],
    pace: Pace,
) -> list[Path]:
    """Narrate the documents of ``batch``; those the budget cannot pay for yet, or that
    would not finish by the deadline, are left out and returned (their paths), to be
    tried again later."""
    kwargs = {} if options.max_text_bytes is None else {"max_text_bytes": options.max_text_bytes}
    loaded = await read_batch(batch, **kwargs)  # type: ignore[arg-type]
    store = settings.store_dir
    for unread in loaded.unread:
        report(unread)
        row = QueueRow(unread.input, "", unread.status, "; ".join(unread.errors))
        await asyncio.to_thread(record, store, [row])
    works = plan_works(batch, loaded, str(out), options.fmt)
    if not works:
        return []
    unsplit: list[tuple[Work, DocumentReport]] = []
    keyed = await keyed_chunks(works, settings, unsplit)
    source = {id(doc): item.location for item, doc in loaded.documents}
    for work, failed in unsplit:  # its respellings over their budget: it fails alone
        failed = dataclasses.replace(failed, input=source[id(work.document)])
        report(failed)
        row = QueueRow(failed.input, failed.output, Status.FAILED, "; ".join(failed.errors))
        await asyncio.to_thread(record, store, [row])
    costs = await asyncio.to_thread(unpaid, store, keyed)
    if options.order == "shortest":  # the most books finished by morning
        keyed = sorted(keyed, key=lambda pair: costs[id(pair[0])][0])
    else:
        keyed = sorted(keyed, key=lambda pair: source[id(pair[0].document)])
    if options.max_doc_chars is not None:
        keyed = await _refuse_costly(keyed, costs, source, options, store, report)
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
    await asyncio.to_thread(record, store, rows)
    if plans:
        began = time.monotonic()
        result = await run(plans, settings, stop)
        pace.measured(result.requests, time.monotonic() - began)
        ended = {row.output: row for row in rows}
        for document in result.documents:
            report(document)
            started = ended.get(document.output)
            if started is not None:
                detail = "; ".join(document.errors)
                done = QueueRow(
                    started.input, started.output, document.status, detail, started.keys
                )
                await asyncio.to_thread(record, store, [done])
            if options.on_done and document.status is Status.DONE:
                await asyncio.to_thread(run_on_done, options.on_done, document)
    return [Path(source[id(work.document)]) for work in waiting]
