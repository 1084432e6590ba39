"""The store, awaited: its calls run one at a time on a thread of their own.

SQLite calls block: on a busy timeout (another process holding the write lock) for
up to 30 s, on a full journal, on a slow disk. Run on the event loop, one such call
froze every request in flight. Here every store call runs on one thread, in the order
it was made, so the loop keeps serving requests and downloads while the store waits.
One thread, not a pool: the connection and its transactions are used by one caller at
a time, and calls keep their order (a claim before the write it guards).

Every chunk makes a few store calls, so a call's trip costs little: the thread takes
calls from a queue and hands results back in batches, with one wake-up of the loop for
all the results that finished while the loop was busy (an executor wakes it, and takes
several locks, per call). A write that nothing waits on is posted rather than awaited:
it keeps its place in the order and costs the loop nothing.

A call whose awaiting task is cancelled still runs to its end on the thread (SQLite
cannot be interrupted half-way); the next call waits for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ..settings import default
from . import Store, open_store

__all__ = ["StoreThread"]

log = logging.getLogger("narrator")

P = ParamSpec("P")
T = TypeVar("T")

# A call, and where its result goes (None: posted, nobody waits for it).
_Call = tuple[Callable[[], Any], "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None"]
_Done = tuple["asyncio.Future[Any]", Any, BaseException | None]


class StoreThread:
    """Runs a :class:`Store`'s calls on a thread of its own: ``await thread.run(...)``."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the two below
        self._done: dict[asyncio.AbstractEventLoop, list[_Done]] = {}  # results per loop
        self._thread: threading.Thread | None = None  # started by the first call
        self._ended = False

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("no store is open on this thread")  # a bug: open() first
        return self._store

    async def open(
        self,
        root: Path,
        *,
        url: str | None = None,
        objects_url: str | None = None,
        max_segment_bytes: int = default("max_segment_bytes"),
    ) -> Store:
        """Open the store of cache folder ``root``, its rows in ``url``'s database if given
        (it may wait for another process's lock, or for the database to be reachable), in
        front of the object store at ``objects_url`` if one is given (objects up to
        ``max_segment_bytes`` are read from it)."""
        self._store = await self.run(
            open_store,
            root,
            url=url,
            objects_url=objects_url,
            max_segment_bytes=max_segment_bytes,
        )
        return self._store

    async def run(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` on the store's thread, after every earlier call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((functools.partial(call, *args, **kwargs), future, loop))
        return await future

    def post(self, call: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """``call(*args, **kwargs)`` on the store's thread, after every earlier call, not
        awaited: for a write nothing waits on (a claim let go, a verdict). An error is
        logged and dropped: what the write would have noted is found missing later and
        done again (a lapsed claim, a segment judged again for free)."""
        self._put((functools.partial(call, *args, **kwargs), None, None))

    def _put(self, item: _Call) -> None:
        if self._ended:
            raise RuntimeError("the store's thread has ended")  # a bug: a call after close
        if self._thread is None:
            # A daemon: one never ended (a test's, say) must not keep the process alive.
            self._thread = threading.Thread(target=self._serve, name="narrator-store", daemon=True)
            self._thread.start()
        self._calls.put(item)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future, loop = item
            try:
                result, error = call(), None
            except BaseException as exc:  # the caller's to handle, as from any await
                result, error = None, exc
            if future is None or loop is None:
                if error is not None:
                    log.debug("a store write nothing waited on failed: %r", error)
                continue
            with self._lock:
                batch = self._done.setdefault(loop, [])
                batch.append((future, result, error))
                first = len(batch) == 1  # else a delivery is already on its way
            if first:
                try:
                    loop.call_soon_threadsafe(self._deliver, loop)
                except RuntimeError:  # that loop is closed: nobody is left to tell
                    with self._lock:
                        self._done.pop(loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: hand every result that finished for it to its caller."""
        with self._lock:
            batch = self._done.pop(loop, [])
        for future, result, error in batch:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    async def close(self) -> None:
        """Close the store (after every call made before) and end the thread."""
        try:
            if self._store is not None:
                # Not interrupted here: a run that ends normally lets its last puts to the
                # object store wait out an outage (bounded); a stopping run interrupted it.
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
        if not self._ended:
            self._ended = True
            self._calls.put(None)


def _nothing() -> None:
    """A call that only waits its turn."""
