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
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from .batch import Batch, find_batch, plan_works, read_batch
from .errors import ConfigError
from .pipeline import DocumentReport, RunReport, Work, narrate_many
from .settings import Settings
from .status import Status

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


class _Inbox:
    """Which files are new or changed and have stopped changing."""

    def __init__(self, folder: Path, options: WatchOptions) -> None:
        self.folder = folder
        self.options = options
        self.handled: dict[Path, tuple[int, int]] = {}  # narrated (or tried) in this state
        self.pending: dict[Path, tuple[tuple[int, int], float]] = {}  # state, seen since

    def scan(self, now: float) -> tuple[Batch | None, float | None]:
        """The files ready to read, and when to look again for those still settling."""
        try:
            batch = find_batch(
                [str(self.folder)], include=self.options.include, exclude=self.options.exclude
            )
        except ConfigError:  # an empty inbox
            return None, None
        ready = []
        next_look: float | None = None
        for item in batch.items:
            path = Path(item.location)
            if is_temporary(path):
                continue
            sig = _signature(path)
            if sig is None or self.handled.get(path) == sig:
                continue
            state = self.pending.get(path)
            if state is None or state[0] != sig:
                self.pending[path] = (sig, now)
                since = now
            else:
                since = state[1]
            if now - since >= self.options.settle:
                ready.append(item)
                self.handled[path] = sig
                del self.pending[path]
            else:
                wait = since + self.options.settle - now
                next_look = wait if next_look is None else min(next_look, wait)
        return (Batch(tuple(ready), True) if ready else None), next_look


async def watch(
    inbox: Path,
    out: Path,
    settings: Settings,
    *,
    stop: asyncio.Event,
    options: WatchOptions = WatchOptions(),
    narrate: Callable[[list[Work], Settings, asyncio.Event], Awaitable[RunReport]] | None = None,
    on_report: Callable[[DocumentReport], None] | None = None,
) -> None:
    """Narrate every document in ``inbox`` into ``out`` (mirroring its tree), then each
    new or changed one once it has stopped changing, until ``stop`` is set.

    A document deleted from the inbox keeps its book. Documents ready together go
    through one pool (one rate limiter, several documents in flight).
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

    listener = asyncio.create_task(listen())
    box = _Inbox(inbox, options)
    try:
        while not stop.is_set():
            changed.clear()
            batch, next_look = box.scan(time.monotonic())
            if batch is not None:
                await _narrate_batch(batch, out, settings, stop, options, run, report)
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
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _narrate_batch(
    batch: Batch,
    out: Path,
    settings: Settings,
    stop: asyncio.Event,
    options: WatchOptions,
    run: Callable[[list[Work], Settings, asyncio.Event], Awaitable[RunReport]],
    report: Callable[[DocumentReport], None],
) -> None:
    kwargs = {} if options.max_text_bytes is None else {"max_text_bytes": options.max_text_bytes}
    loaded = await read_batch(batch, **kwargs)  # type: ignore[arg-type]
    for unread in loaded.unread:
        report(unread)
    works = plan_works(batch, loaded, str(out), options.fmt)
    if not works:
        return
    result = await run(works, settings, stop)
    for document in result.documents:
        report(document)
        if options.on_done and document.status is Status.DONE:
            await asyncio.to_thread(run_on_done, options.on_done, document)
