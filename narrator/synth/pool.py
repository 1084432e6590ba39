"""The worker pool: concurrency, the rate limit, retries. All the timing lives here.

Workers take jobs from one queue shared by every document of a run; each chunk's
requests, downloads and retries are :mod:`.attempts`', paced by :mod:`.rate`. Results
are futures, so documents collect their own chunks in order whatever order they
finish in. ``StopRun`` (bad key, no credits, a full disk) stops the pool.

Several processes may share one cache: a worker claims its chunk in the store before it
sends it (renewed before each attempt), and a chunk another process has claimed goes to
the back of the queue until its audio is in the store or the claim lapses. So each chunk
is billed once, whichever process gets to it first. Every store call is awaited on the
store's own thread (:mod:`narrator.store.thread`), so a store waiting for a lock stops nothing.

Any other exception in a worker fails its chunk with a message, or stops the run when
it is not about one chunk (SQLite, the disk): a worker never dies with a future unset.

With a quality gate (:mod:`narrator.synth.quality`), every segment is judged once it is in
the store, and a bad one synthesized again, under the same claim: :mod:`narrator.synth.retakes`
does that, through this pool's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import (
    AudioError,
    ChunkFailed,
    InternalFailure,
    NarratorError,
    Stopped,
    StopRun,
)
from ..store import Segment, Store, StoredVerdict
from ..store.thread import StoreThread
from ..util.diskspace import disk_full, is_disk_full
from ..util.wav import WavInfo
from .attempts import Attempts, ClaimedElsewhere
from .jobs import Job, Outcome, PoolConfig, PoolStats, Started
from .providers import Provider
from .quality import Gate
from .rate import AdaptiveRate, Clock, Rate, Slots
from .sanity import Format, check_segment

if TYPE_CHECKING:
    from .retakes import Retakes

__all__ = ["ChunkFailed", "Job", "Outcome", "Pool", "PoolConfig", "PoolStats", "Stopped"]

log = logging.getLogger("narrator")

# Signed links live about 24 hours; a link older than this is not worth trying.
LINK_MAX_AGE = 20 * 3600.0
# A link whose download comes back broken this many times running is synthesized again.
BROKEN_LINK_LIMIT = 3
# A 400 whose message names the text is about that chunk; any other 400 on the first
# request (the voice, the model, the body) would be every chunk's answer.
_ABOUT_TEXT = re.compile(r"\b(text|input|characters?|length|content|too long)\b", re.IGNORECASE)


def _fail(future: asyncio.Future[Outcome], error: BaseException) -> None:
    if not future.done():  # an abort may have failed it already
        future.set_exception(error)


class Pool:
    """Runs jobs through a provider with bounded concurrency, a rate limit and retries.

    ``gate`` judges every segment (None: no quality gate); ``sleep``, ``rng`` and
    ``clock`` are the pool's time and chance, for tests to replace. ``rate`` paces the
    requests (None: this process's own :class:`AdaptiveRate` at ``config.rpm``) and
    ``slots``, when given, caps the requests in flight beyond ``config.concurrency``:
    both are shared by several workers of one account (:mod:`narrator.cluster.pacing`).
    """

    def __init__(
        self,
        provider: Provider,
        store: Store | StoreThread,
        config: PoolConfig,
        *,
        gate: Gate | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        rate: Rate | None = None,
        slots: Slots | None = None,
    ) -> None:
        voice, concurrency, lease = config.voice, config.concurrency, config.lease
        self.config = config
        self.provider = provider
        # Every store call is awaited on the store's own thread: a store waiting for
        # another process's lock must not stop the requests in flight.
        self._own_thread = isinstance(store, Store)
        self.db = StoreThread(store) if isinstance(store, Store) else store
        self.store = self.db.store
        self.voice = voice
        self.concurrency = concurrency
        self.rate: Rate = rate or AdaptiveRate(config.rpm, adaptive=config.adaptive, clock=clock)
        self.lease = lease
        self.claim_poll = config.claim_poll
        self.stats = PoolStats()
        self.stop_reason: StopRun | None = None
        self.attempts = Attempts(
            provider,
            self.db,
            voice=voice,
            rate=self.rate,
            stats=self.stats,
            concurrency=concurrency,
            retries=config.retries,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_segment_bytes=config.max_segment_bytes,
            lease=lease,
            sleep=sleep,
            rng=rng or random.Random(),
            progressed=self._progressed,
            stopped=self._stopped,
            measure=gate is not None,
            slots=slots,
        )
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._futures: dict[str, asyncio.Future[Outcome]] = {}
        self._owners: dict[str, object] = {}  # who first asked for each key
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        # What the watchdog reads: when a chunk last progressed, and what is under way.
        self.last_progress = 0.0
        self._waiting: set[str] = set()  # keys another process holds a claim on
        self.gate = gate
        self.retakes: Retakes | None = None
        if gate is not None:
            from .retakes import Retakes  # it builds on this module's types

            self.retakes = Retakes(
                gate,
                self.db,
                voice_key=f"{provider.identity}\0{voice}",
                retries=config.qa_retries,
                budget=config.qa_budget,
                stats=self.stats,
                synthesize=self.attempts.synthesize,
                stopped=self._stopped,
            )

    @property
    def pending(self) -> int:
        """Chunks submitted and not finished."""
        return sum(not future.done() for future in self._futures.values())

    @property
    def waiting_for_others(self) -> int:
        return len(self._waiting)

    @property
    def requests_in_flight(self) -> int:
        return self.attempts.requests_in_flight

    @property
    def downloads_in_flight(self) -> int:
        return self.attempts.downloads_in_flight

    @property
    def format(self) -> Format | None:
        """The format of the first segment stored in this run; every other must match it."""
        return self.attempts.format

    def _progressed(self) -> None:
        self.last_progress = asyncio.get_running_loop().time()

    def abort(self, reason: StopRun) -> None:
        """Stop at once: no grace for work under way, whose chunks fail with ``reason``."""
        self.stop(reason)
        for task in self._workers:
            task.cancel()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(self.stop_reason or reason)

    async def __aenter__(self) -> Pool:
        self._progressed()
        if self.retakes is not None:
            await self.retakes.warm()
        # Twice the request slots, so downloads overlap with the next requests.
        self._workers = [
            asyncio.create_task(self._work(), name=f"narrator-worker-{i}")
            for i in range(2 * self.concurrency)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._own_thread:
            await self.db.finish()

    def submit(self, job: Job, *, owner: object = None) -> asyncio.Future[Outcome]:
        """Queue a job; the same key twice shares one future (and one request).

        ``owner`` (a document, say) is remembered for the first submission of a key,
        so :meth:`spent` can count each request once.
        """
        self._owners.setdefault(job.key, owner)
        future = self._futures.get(job.key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._futures[job.key] = future
            if self._stopping:
                future.set_exception(Stopped("the run was stopped"))
            else:
                self._queue.put_nowait((job, future))
        return future

    def add_qa_budget(self, extra: int) -> None:
        """Allow ``extra`` more re-syntheses of bad audio (the run's share is known only
        once the text is split, after the first requests)."""
        if self.retakes is not None and self.retakes.budget is not None:
            self.retakes.budget += extra

    def spent(self, key: str, owner: object) -> tuple[int, int]:
        """(requests, retries) spent on ``key`` if ``owner`` first asked for it, else zeros:
        a chunk that several documents share is paid for once, by the first."""
        if self._owners.get(key) is not owner:
            return 0, 0
        return self.attempts.requests[key], self.attempts.retries_of[key]

    def stop(self, reason: StopRun | None = None) -> None:
        """Start no new jobs; queued ones fail with :class:`Stopped` (or ``reason``)."""
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        self._stopping = True
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(self.stop_reason or Stopped("the run was stopped"))

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _stopped(self) -> NarratorError | None:
        """What to raise instead of starting more work, if the pool is stopping."""
        if not self._stopping:
            return None
        return self.stop_reason or Stopped("the run was stopped")

    async def _work(self) -> None:
        while True:
            job, future = await self._queue.get()
            if future.done():
                continue
            try:
                outcome = await self._run(job)
            except ClaimedElsewhere:
                # Its audio will be in the store soon; look again after the other jobs.
                self._waiting.add(job.key)
                if self._stopping:
                    _fail(future, self.stop_reason or Stopped("the run was stopped"))
                else:
                    self._queue.put_nowait((job, future))
                    await asyncio.sleep(self.claim_poll)  # another process's pace, not ours
                continue  # waiting on another process is not progress
            except StopRun as exc:
                self.stop(exc)
                _fail(future, exc)
            except (NarratorError, AudioError) as exc:
                _fail(future, exc)
            except (OSError, sqlite3.Error) as exc:
                if is_disk_full(exc):
                    # Every later write would fail too: stop the run, keep what is finished.
                    # The store's reserve stays: the requests in flight write their links
                    # into it in place (deleted, its room could go to any other writer).
                    full = disk_full(self.store.root)
                    self.stop(full)
                    _fail(future, self.stop_reason or full)
                else:
                    # The store or the disk: every other chunk would meet it too.
                    failure = InternalFailure(f"the run stopped: {type(exc).__name__}: {exc}")
                    self.stop(failure)
                    _fail(future, self.stop_reason or failure)
            except Exception as exc:  # a worker must never die with its future unset
                # A bug, not the service: said loudly, with where it happened.
                log.error("a chunk failed unexpectedly (%s: %s)", type(exc).__name__, exc,
                          exc_info=True)  # fmt: skip
                _fail(future, ChunkFailed(f"unexpected {type(exc).__name__}: {exc}", attempts=1))
            else:
                if not future.done():  # an abort may have failed it meanwhile
                    future.set_result(outcome)
            self._waiting.discard(job.key)
            self._progressed()

    def _stop_now(self, exc: Exception) -> None:
        """Stop at once for an error that stops the run, before the claim is let go (an
        await, in which another worker could start a request); ``_work`` then fails the
        chunk as always."""
        if isinstance(exc, StopRun):
            self.stop(exc)
        elif isinstance(exc, (OSError, sqlite3.Error)):
            if is_disk_full(exc):
                self.stop(disk_full(self.store.root))
            else:
                self.stop(InternalFailure(f"the run stopped: {type(exc).__name__}: {exc}"))

    def _still_good(self, segment: Segment, job: Job) -> bool:
        """A cached segment passes today's checks too (it may predate them)."""
        frame = segment.channels * segment.width
        info = WavInfo(segment.rate, segment.channels, segment.width, 0, segment.frames * frame)
        try:
            check_segment(info, billing_chars=job.billing_chars)
        except AudioError as exc:
            log.warning("a cached segment is unusable (%s); synthesizing it again", exc)
            return False
        return True

    async def _run(self, job: Job) -> Outcome:
        retakes = self.retakes
        # One trip to the store's thread: look, claim, look again (see _look_and_claim).
        asked = asyncio.get_running_loop().time()  # the claim is no older than this
        claimed, cached, stored, started = await self.db.run(self._look_and_claim, job)
        if not claimed:
            assert cached is not None
            if retakes is None:
                return Outcome(cached, 0, 0, cached=True)
            assert stored is not None
            return retakes.settled_outcome(cached, stored)
        self.attempts.claimed(job.key, asked)
        try:
            if retakes is not None:
                return await retakes.run(job, cached, stored, started)
            if cached is not None:
                return Outcome(cached, 0, 0, cached=True)
            made = await self.attempts.synthesize(job, 0, started)
            return Outcome(made.segment, made.requests, made.retries, cached=False)
        except Exception as exc:
            self._stop_now(exc)
            raise
        finally:
            self.attempts.released(job.key)
            self.db.post(self.store.release, job.key)  # a lapsed claim frees it anyway

    def _look_and_claim(
        self, job: Job
    ) -> tuple[bool, Segment | None, StoredVerdict | None, Started | None]:
        """On the store's thread: (claimed, segment, verdict, what the claim found) for
        ``job``.

        A finished segment (judged and settled, with a quality gate) comes back unclaimed;
        otherwise the chunk is claimed (its row made in the same transaction), and looked
        up again, since the other process may have finished it between the first look
        and the claim. Raises :class:`ClaimedElsewhere` when another process holds the claim.
        """
        cached, stored = self._stored(job)
        if cached is not None and (
            self.retakes is None or (stored is not None and self.retakes.settled(stored))
        ):
            return False, cached, stored, None
        # With a gate, judging a segment may lead to its re-synthesis: that needs the claim.
        if not self.store.claim(job.key, seconds=self.lease, billing_chars=job.billing_chars):
            raise ClaimedElsewhere(job.key)
        try:
            cached, stored = self._stored(job)
            started = Started(self.store.pending_link(job.key, max_age=LINK_MAX_AGE))
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.store.release(job.key)
            raise
        if cached is not None and self.retakes is None:
            with contextlib.suppress(sqlite3.Error):  # a lapsed claim frees it anyway
                self.store.release(job.key)
            return False, cached, stored, None
        return True, cached, stored, started

    def _stored(self, job: Job) -> tuple[Segment | None, StoredVerdict | None]:
        """The segment of ``job`` if it passes today's checks, and the gate's verdict."""
        if self.retakes is None:
            cached, stored = self.store.lookup(job.key), None
        else:
            cached, stored = self.store.lookup_judged(job.key)
        if cached is not None and not self._still_good(cached, job):
            self.store.discard(job.key)
            cached = None
        return cached, stored

    async def recheck(self, job: Job, outcome: Outcome) -> Outcome:
        """Judge a provisional pass again once the document is in (see :mod:`.retakes`)."""
        return outcome if self.retakes is None else await self.retakes.recheck(job, outcome)
