"""The first requests sent while the rest of the text is still being split.

Splitting runs at about 110,000 characters a second (pysbd), so a long book would wait
seconds for its first request. Instead the splitter hands the first document's chunks
over as it closes them (:func:`narrator.chunks.split.iter_chunks`: a closed chunk is
final; :meth:`narrator.run.plan.Planner.plan_all` tells of each with its segment key),
and they go to the pool at once, each in its own voice. The run's own steps follow the
split as before (up to date, the room check, the budget, each document's chunks in
order); the pool shares one request per key, so a chunk sent early is not sent again.

Only when nothing can be wasted: the book's output is not there (so it cannot be up to
date; a chunk already in the store costs nothing anyway, since the pool looks there
first) and the folders have room for the whole text, counted without splitting. The
spending guards (``--max-cost``, ``--confirm-above``) decide before the run starts.
"""

from __future__ import annotations

import asyncio
import glob
from collections.abc import Sequence
from pathlib import Path

from ..chunks.split import Chunk
from ..errors import DiskFull
from ..settings import Settings
from ..synth.jobs import Job
from ..synth.pool import Pool
from ..synth.providers import Provider
from ..util.diskspace import BYTES_PER_CHAR, check_room
from .plan import Plan
from .results import Work

__all__ = ["EarlyStart"]


class EarlyStart:
    """Feeds the pool the first document's chunks as the splitting thread cuts them."""

    def __init__(
        self, pool: Pool, given: Sequence[Work | Plan], settings: Settings, provider: Provider
    ) -> None:
        works = [work.work if isinstance(work, Plan) else work for work in given]
        self._loop = asyncio.get_running_loop()
        self._pool = pool
        self._work = works[0] if works and _safe(works, settings, provider) else None
        self._open = True
        self.sent = 0  # chunks handed to the pool early

    def offer(self, plan: Plan, chunk: Chunk, key: str) -> None:
        """From the splitting thread: ``chunk`` of ``plan`` (segment key ``key``) is final."""
        if self._open and plan.work is self._work:
            self._loop.call_soon_threadsafe(self._submit, chunk, key)

    def done(self) -> None:
        """The split is over: the run submits every chunk itself from now on."""
        self._open = False

    def _submit(self, chunk: Chunk, key: str) -> None:
        if not self._open or self._pool.stopping:
            return
        job = Job(key, chunk.text, chunk.billing_chars, chunk.voice)
        self._pool.submit(job, owner=self._work)
        self.sent += 1


def _safe(works: Sequence[Work], settings: Settings, provider: Provider) -> bool:
    """Whether sending the first document's chunks before the run's checks wastes
    nothing: no output of it yet, and room for all the text as if none were cached."""
    output = works[0].output
    parts = glob.escape(output.stem) + "-*" + glob.escape(output.suffix)
    if output.exists() or any(output.parent.glob(parts)):
        return False
    needs: dict[Path, int] = {}
    cache = settings.store_dir.absolute()
    for work in works:
        audio = provider.billing_chars(work.document.text) * BYTES_PER_CHAR
        needs[cache] = needs.get(cache, 0) + audio
        folder = work.output.absolute().parent
        needs[folder] = needs.get(folder, 0) + audio  # a WAV book; others are smaller
    try:
        check_room(needs)
    except DiskFull:
        return False
    return True
