"""The watchdog: a run in which no chunk progresses for too long fails, saying why.

Every await that talks to the network or the disk has its own bound (request and
download timeouts, SQLite's busy timeout); the watchdog is the net under all of them, for
what no single bound catches (a worker stuck on something unforeseen, a service that
trickles bytes forever). Progress is anything the pool does with a chunk: a request or
download ending, well or not, or a chunk finishing. Only chunk work is watched: once
every chunk is in, stitching and encoding a long book may take as long as they take.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import Stalled
from .pool import Pool

__all__ = ["watch"]

log = logging.getLogger("narrator")


async def watch(pool: Pool, *, seconds: float, what: str) -> None:
    """Until cancelled: fail ``pool``'s run when no chunk progressed for ``seconds``.

    ``what`` names the service, for the message (its host and port).
    """
    loop = asyncio.get_running_loop()
    while True:
        idle = loop.time() - pool.last_progress
        if idle < seconds or pool.pending == 0:
            await asyncio.sleep(max(0.05, seconds - idle) if pool.pending else min(seconds, 1.0))
            continue
        waits = []
        if pool.requests_in_flight:
            waits.append(f"{pool.requests_in_flight} request(s) to {what}")
        if pool.downloads_in_flight:
            waits.append(f"{pool.downloads_in_flight} audio download(s)")
        if pool.waiting_for_others:
            waits.append(f"{pool.waiting_for_others} chunk(s) another process is synthesizing")
        waiting = ", ".join(waits) or f"{pool.pending} chunk(s) that never started"
        error = Stalled(
            f"no progress for {idle:.0f} s while waiting for {waiting} "
            "(--stall-timeout; raise it if the service is only slow)"
        )
        log.debug("watchdog: %s", error)
        pool.abort(error)
        return
