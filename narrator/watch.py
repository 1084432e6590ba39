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
import datetime
import logging
import os
import re
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from .batch import Batch, find_batch, plan_works, read_batch
from .errors import ConfigError
from .estimate import wall_clock
from .pipeline import DocumentReport, RunReport, Work, narrate_many, split_all
from .settings import Settings
from .status import Status
from .synth.providers import make_provider
from .synth.store import segment_key
from .synth.store_queue import QueueRow, read_queue, record
from .synth.store_spend import billed_since, paid_keys

__all__ = [
    "QueueEntry", "WatchOptions", "admit", "is_temporary", "parse_until", "queue",
    "run_on_done", "watch",
]  # fmt: skip

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


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_until(text: str, now: datetime.datetime) -> float:
    """``HH:MM`` (the next time the clock of ``now`` shows it) or a duration (``8h``,
    ``90m``, ``2h30m``, ``45s``) into seconds since the epoch."""
    hours, colon, minutes = text.partition(":")
    if colon and hours.isdigit() and minutes.isdigit():
        h, m = int(hours), int(minutes)
        if h > 23 or m > 59:
            raise ConfigError(f"--until {text}: not a time of day (HH:MM, 00:00 to 23:59)")
        at = now.replace(hour=h, minute=m, second=0, microsecond=0)
        if at <= now:
            at += datetime.timedelta(days=1)
        return at.timestamp()
    found = _DURATION.fullmatch(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        raise ConfigError(f"--until {text}: give a time of day (07:00) or a duration (8h, 90m)")
    h, m, sec = (int(g or 0) for g in found.groups())
    return now.timestamp() + h * 3600 + m * 60 + sec


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
    narrate: Callable[[list[Work], Settings, asyncio.Event], Awaitable[RunReport]] | None = None,
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
    pace = _Pace(options.latency)
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
    run: Callable[[list[Work], Settings, asyncio.Event], Awaitable[RunReport]],
    report: Callable[[DocumentReport], None],
    pace: _Pace,
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
    keyed = await _keyed(works, settings)
    source = {id(doc): item.location for item, doc in loaded.documents}
    unpaid = await asyncio.to_thread(_unpaid, store, keyed)
    if options.order == "shortest":  # the most books finished by morning
        keyed = sorted(keyed, key=lambda pair: unpaid[id(pair[0])][0])
    else:
        keyed = sorted(keyed, key=lambda pair: source[id(pair[0].document)])
    works = [work for work, _ in keyed]
    waiting: list[Work] = []
    reasons: dict[int, str] = {}
    if options.budget_chars is not None:
        works, held = await admit(keyed, settings, options, unpaid=unpaid)
        waiting += held
        reasons.update((id(w), "waiting for budget") for w in held)
    if options.deadline is not None:
        works, late = pace.fit(works, unpaid, settings, options.deadline - time.time())
        waiting += late
        reasons.update((id(w), "waiting for deadline") for w in late)
    admitted = {id(work) for work in works}
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
    if works:
        began = time.monotonic()
        result = await run(works, settings, stop)
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


async def _keyed(works: Sequence[Work], settings: Settings) -> list[tuple[Work, dict[str, int]]]:
    """Each document with its chunks' segment keys and billing characters, as a run
    would cut them."""
    provider = make_provider(settings)
    try:
        plans = await asyncio.to_thread(split_all, works, settings, provider)
        identity = provider.identity
    finally:
        await provider.aclose()
    return [
        (
            work,
            {
                segment_key(provider=identity, voice=settings.voice, text=c.text): c.billing_chars
                for c in chunks
            },
        )
        for work, chunks in plans
    ]


def _unpaid(
    store_dir: Path, keyed: Sequence[tuple[Work, dict[str, int]]]
) -> dict[int, tuple[int, int]]:
    """Per document (by ``id`` of its work): the billing characters and the requests the
    store does not have yet."""
    result = {}
    for work, keys in keyed:
        paid = paid_keys(store_dir, keys)
        missing = [chars for key, chars in keys.items() if key not in paid]
        result[id(work)] = (sum(missing), len(missing))
    return result


class _Pace:
    """Seconds a document will take: at the measured pace of this watcher's requests once
    it has one, else as ``narrator estimate`` reckons (rate limit, concurrency, latency)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.per_request: float | None = None

    def measured(self, requests: int, seconds: float) -> None:
        if requests > 0:
            self.per_request = seconds / requests

    def seconds(self, requests: int, settings: Settings) -> float:
        if self.per_request is not None:
            return requests * self.per_request
        return wall_clock(
            requests, rpm=settings.rpm, concurrency=settings.concurrency, latency=self.latency
        )

    def fit(
        self,
        works: Sequence[Work],
        unpaid: dict[int, tuple[int, int]],
        settings: Settings,
        left: float,
    ) -> tuple[list[Work], list[Work]]:
        """Those of ``works`` (in order) that all finish within ``left`` seconds, and the
        rest; a document that does not fit is skipped, a later shorter one may still."""
        fits: list[Work] = []
        late: list[Work] = []
        requests = 0
        for work in works:
            more = unpaid[id(work)][1]
            # Admitted together, they share one pool: their requests add up.
            if self.seconds(requests + more, settings) <= left:
                fits.append(work)
                requests += more
            else:
                late.append(work)
                log.warning(
                    "waiting for deadline: %s needs about %.0f s more, %.0f s left",
                    work.document.source, self.seconds(more, settings), max(left, 0.0),
                )  # fmt: skip
        return fits, late


async def admit(
    keyed: Sequence[tuple[Work, dict[str, int]]],
    settings: Settings,
    options: WatchOptions,
    *,
    unpaid: dict[int, tuple[int, int]] | None = None,
    now: float | None = None,
) -> tuple[list[Work], list[Work]]:
    """Split the documents into those the budget pays for now, in order, and those that
    wait.

    A document costs what the store does not have yet: an up-to-date book or one half
    done before a restart costs nothing, or only its missing chunks.
    """
    assert options.budget_chars is not None
    now = time.time() if now is None else now
    spent = await asyncio.to_thread(billed_since, settings.store_dir, now - options.budget_window)
    left = options.budget_chars - spent
    admitted: list[Work] = []
    waiting: list[Work] = []
    if unpaid is None:
        unpaid = await asyncio.to_thread(_unpaid, settings.store_dir, keyed)
    for work, _ in keyed:
        cost = unpaid[id(work)][0]
        if cost <= left:
            admitted.append(work)
            left -= cost
        else:
            waiting.append(work)
            log.warning(
                "waiting for budget: %s needs %d billing characters, %d of %d left in the "
                "last %g hours",
                work.document.source, cost, max(left, 0), options.budget_chars,
                options.budget_window / 3600,
            )  # fmt: skip
    return admitted, waiting


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One inbox document as ``narrator status`` shows it."""

    input: str
    output: str
    state: str  # waiting, waiting for budget, in progress, done, up-to-date, failed, ...
    detail: str
    percent: float | None  # of its chunks in the store; None when not yet cut
    updated: float  # seconds since the epoch


def queue(store_dir: Path) -> list[QueueEntry]:
    """What the watchers using ``store_dir`` have seen, read from the store: safe while
    they run, from any process."""
    entries = []
    for row in read_queue(store_dir):
        percent = None
        if row.keys:
            percent = 100.0 * len(paid_keys(store_dir, row.keys)) / len(row.keys)
        entries.append(
            QueueEntry(row.input, row.output, row.state, row.detail, percent, row.updated)
        )
    return entries
