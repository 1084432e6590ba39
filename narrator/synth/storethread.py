"""The store, awaited: its calls run one at a time on a thread of their own.

SQLite calls block: on a busy timeout (another process holding the write lock) for
up to 30 s, on a full journal, on a slow disk. Run on the event loop, one such call
froze every request in flight. Here every store call runs on one thread, in the order
it was made, so the loop keeps serving requests and downloads while the store waits.
One thread, not a pool: the connection and its transactions are used by one caller at
a time, and calls keep their order (a claim before the write it guards). A write that
nothing waits on is posted rather than awaited: it keeps its place in that order and
spares the loop a wake-up.

A call whose awaiting task is cancelled still runs to its end on the thread (SQLite
cannot be interrupted half-way); the next call waits for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from .store import Store

__all__ = ["StoreThread"]

log = logging.getLogger("narrator")

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    """Runs a :class:`Store`'s calls on a thread of its own: ``await thread.run(...)``."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="narrator-store")

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("no store is open on this thread")  # a bug: open() first
        return self._store

    async def open(self, root: Path) -> Store:
        """Open the store of cache folder ``root`` (it may wait for another process's lock)."""
        self._store = await self.run(Store, root)
        return self._store

    async def run(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` on the store's thread, after every earlier call."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def post(self, call: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """``call(*args, **kwargs)`` on the store's thread, after every earlier call, not
        awaited: for a write nothing waits on (a claim let go, a verdict), which then
        costs no wake-up of the loop. An error is logged and dropped: what the write
        would have noted is found missing later and done again (a lapsed claim, a
        segment judged again for free)."""
        self._executor.submit(functools.partial(call, *args, **kwargs)).add_done_callback(
            _log_failure
        )

    async def close(self) -> None:
        """Close the store (after every call made before) and end the thread."""
        try:
            if self._store is not None:
                await self.run(self._store.close)
        finally:
            self.shutdown()

    async def finish(self) -> None:
        """Wait for the calls already made (a cancelled caller's too), then end the thread;
        the store stays open, for use from one thread at a time."""
        try:
            await self.run(_nothing)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """End the thread once the calls already made have run; the store stays open."""
        self._executor.shutdown(wait=False)


def _nothing() -> None:
    """A call that only waits its turn."""


def _log_failure(future: Future[object]) -> None:
    if (exc := future.exception()) is not None:
        log.debug("a store write nothing waited on failed: %s: %s", type(exc).__name__, exc)
