"""The worker pool: concurrency, the rate limit, retries. All the timing lives here.

Workers take jobs from one queue shared by every document of a run. A request holds
one of ``concurrency`` slots and one tick of the rate limiter; downloads hold
neither, since they go to object storage rather than the API. Results are futures,
so documents collect their own chunks in order whatever order they finish in.

What is retried, and how (nothing else is):

- ``RateLimited`` (429): backoff, and the whole run slows down (:mod:`.rate`).
- ``TransientError`` (5xx, timeouts, dropped connections): backoff and resend.
- ``BadDownload`` (a short or broken body): fetch the same link again, so nothing is
  billed twice; after three broken downloads in a row, synthesize again.
- ``LinkExpired``: synthesize again.

``BadRequest`` fails its chunk at once; ``StopRun`` (bad key, no credits, a full disk)
stops the pool.

Several processes may share one cache: a worker claims its chunk in the store before it
sends it (renewed before each attempt), and a chunk another process has claimed goes to
the back of the queue until its audio is in the store or the claim lapses. So each chunk
is billed once, whichever process gets to it first.

Until the service has answered one request well, requests go one at a time (the
probe): a wrong key, voice, model or address then costs one request, not one per
chunk. Before that first good answer, a refused connection or an unknown host stops
the run (:class:`Unreachable`), and so does a 400 that is not about the chunk's text
(:class:`SettingsRejected`); afterwards they are what they always are.

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
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import (
    AudioError,
    BadDownload,
    BadRequest,
    ConnectFailed,
    InternalFailure,
    LinkExpired,
    NarratorError,
    ProviderError,
    RateLimited,
    SettingsRejected,
    StopRun,
    TransientError,
    Unreachable,
)
from ..util.diskspace import disk_full, is_disk_full
from ..util.wav import WavInfo
from .jobs import Job, Outcome, PoolStats
from .providers import Audio, Provider
from .quality import Gate
from .rate import AdaptiveRate, Clock
from .sanity import Format, check_segment, format_of
from .store import Segment, Store, StoredVerdict
from .storethread import StoreThread

if TYPE_CHECKING:
    from .retakes import Retakes

log = logging.getLogger("narrator")

# Signed links live about 24 hours; a link older than this is not worth trying.
LINK_MAX_AGE = 20 * 3600.0
# A link whose download comes back broken this many times running is synthesized again.
BROKEN_LINK_LIMIT = 3
# A 400 whose message names the text is about that chunk; any other 400 on the first
# request (the voice, the model, the body) would be every chunk's answer.
_ABOUT_TEXT = re.compile(r"\b(text|input|characters?|length|content|too long)\b", re.IGNORECASE)


class ChunkFailed(NarratorError):
    """A chunk gave up: its retries ran out or the service refused it."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class _ClaimedElsewhere(Exception):
    """Another process sharing the cache is synthesizing this chunk right now."""


class Stopped(NarratorError):
    """The pool stopped before this job ran (a fatal error or an interrupt)."""


def _fail(future: asyncio.Future[Outcome], error: BaseException) -> None:
    if not future.done():  # an abort may have failed it already
        future.set_exception(error)


class Pool:
    """Runs jobs through a provider with bounded concurrency, a rate limit and retries."""

    def __init__(
        self,
        provider: Provider,
        store: Store | StoreThread,
        *,
        voice: str,
        concurrency: int = 4,
        rpm: float = 60.0,
        retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        adaptive: bool = True,
        max_segment_bytes: int = 50 * 1024 * 1024,
        lease: float = 300.0,
        claim_poll: float = 0.25,
        gate: Gate | None = None,
        qa_retries: int = 2,
        qa_budget: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        # Every store call is awaited on the store's own thread: a store waiting for
        # another process's lock must not stop the requests in flight.
        self._own_thread = isinstance(store, Store)
        self.db = StoreThread(store) if isinstance(store, Store) else store
        self.store = self.db.store
        self.voice = voice
        self.concurrency = concurrency
        self.rate = AdaptiveRate(rpm, adaptive=adaptive, clock=clock)
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_segment_bytes = max_segment_bytes
        # A claim outlives one attempt (request and download); it is renewed before each.
        self.lease = lease
        self.claim_poll = claim_poll
        self.stats = PoolStats()
        self.stop_reason: StopRun | None = None
        # The format of the first segment stored in this run; every other must match it.
        self.format: Format | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._futures: dict[str, asyncio.Future[Outcome]] = {}
        self._owners: dict[str, object] = {}  # who first asked for each key
        self._requests: Counter[str] = Counter()  # requests sent per key
        self._retries: Counter[str] = Counter()
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._answered = False  # the service has answered one request well
        self._probe = asyncio.Lock()
        # What the watchdog reads: when a chunk last progressed, and what is under way.
        self.last_progress = 0.0
        self.requests_in_flight = 0
        self.downloads_in_flight = 0
        self._waiting: set[str] = set()  # keys another process holds a claim on
        self.gate = gate
        self.retakes: Retakes | None = None
        if gate is not None:
            from .retakes import Retakes  # it builds on this module's types

            self.retakes = Retakes(
                gate,
                self.db,
                voice_key=f"{provider.identity}\0{voice}",
                retries=qa_retries,
                budget=qa_budget,
                stats=self.stats,
                synthesize=self._synthesize,
                stopped=self._stopped,
            )

    @property
    def pending(self) -> int:
        """Chunks submitted and not finished."""
        return sum(not future.done() for future in self._futures.values())

    @property
    def waiting_for_others(self) -> int:
        return len(self._waiting)

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

    def spent(self, key: str, owner: object) -> tuple[int, int]:
        """(requests, retries) spent on ``key`` if ``owner`` first asked for it, else zeros:
        a chunk that several documents share is paid for once, by the first."""
        if self._owners.get(key) is not owner:
            return 0, 0
        return self._requests[key], self._retries[key]

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
            except _ClaimedElsewhere:
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
                    # Every later write would fail too: stop the run, keep what is finished,
                    # and free the store's reserve so the requests in flight can note their
                    # links.
                    await self.db.run(self.store.release_reserve)
                    full = disk_full(self.store.root)
                    self.stop(full)
                    _fail(future, self.stop_reason or full)
                else:
                    # The store or the disk: every other chunk would meet it too.
                    failure = InternalFailure(f"the run stopped: {type(exc).__name__}: {exc}")
                    self.stop(failure)
                    _fail(future, self.stop_reason or failure)
            except Exception as exc:  # a worker must never die with its future unset
                log.debug("chunk failed unexpectedly", exc_info=True)
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

    def _delay(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(self.backoff_max, error.retry_after)
        # Full jitter: spreads retries of chunks that failed together.
        return self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    async def _request(self, job: Job, attempt: int, again: int = 0) -> Audio:
        if not self._answered:
            async with self._probe:
                if not self._answered:
                    return await self._first_request(job, attempt, again)
        return await self._send(job, attempt, again)

    async def _first_request(self, job: Job, attempt: int, again: int) -> Audio:
        """The probe: what a request with these settings gets, before the others go."""
        try:
            audio = await self._send(job, attempt, again)
        except ConnectFailed as exc:
            raise Unreachable(str(exc)) from exc
        except BadRequest as exc:
            if _ABOUT_TEXT.search(str(exc)):
                raise  # this chunk's problem: the next request probes again
            raise SettingsRejected(
                f"{exc} (voice {self.voice!r}); nothing else was sent, since every "
                "request would be refused the same way"
            ) from exc
        self._answered = True
        return audio

    async def _send(self, job: Job, attempt: int, again: int = 0) -> Audio:
        async with self._slots:
            if self._stopping:
                raise self.stop_reason or Stopped("the run was stopped")
            started = await self.rate.acquire()
            self.stats.requests += 1
            self._requests[job.key] += 1
            # Unique per request: a service that deduplicates by id must not hand a
            # re-synthesis the answer the gate turned down.
            retake = f"q{again}-" if again else ""
            request_id = f"narrator-{job.key[:24]}-{retake}{attempt}"
            self.requests_in_flight += 1
            try:
                audio = await self.provider.synthesize(
                    job.text, voice=self.voice, request_id=request_id
                )
            except RateLimited:
                self.stats.throttled += 1
                if self.rate.throttled(started):
                    self.stats.rate_changes.append((started, self.rate.rpm))
                    log.warning(
                        "rate limited by the service: slowing to %.0f requests/minute",
                        self.rate.rpm,
                    )
                raise
            finally:
                self.requests_in_flight -= 1
                self._progressed()
        self.rate.succeeded()
        return audio

    async def _note_link(self, key: str, url: str) -> None:
        """Write down a link just paid for, even on a full disk (from the store's reserve)."""
        db, store = self.db, self.store
        try:
            await db.run(store.record_link, key, url)
        except sqlite3.Error as exc:
            if not is_disk_full(exc) or not await db.run(store.release_reserve):
                raise
            await db.run(store.record_link, key, url)
            raise  # the link is kept; the full disk still stops the run

    def _checker(self, job: Job) -> Callable[[WavInfo], None]:
        """The check a new segment of ``job`` passes before it is stored."""

        def check(info: WavInfo) -> None:
            check_segment(info, billing_chars=job.billing_chars, expected=self.format)
            if self.format is None:
                self.format = format_of(info)

        return check

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

    async def _fetch(self, job: Job, url: str) -> Segment:
        temp = self.store.temp_path(job.key)
        self.stats.downloads += 1
        self.downloads_in_flight += 1
        try:
            await self.provider.download(url, temp, max_bytes=self.max_segment_bytes)
            return await self.db.run(self.store.commit, job.key, temp, check=self._checker(job))
        except AudioError as exc:
            # Counted as a broken download: after a few, the chunk is synthesized again.
            raise BadDownload(f"the service sent unusable audio: {exc}") from exc
        finally:
            self.downloads_in_flight -= 1
            self._progressed()
            temp.unlink(missing_ok=True)

    async def _run(self, job: Job) -> Outcome:
        if self.retakes is not None:
            return await self._run_judged(job, self.retakes)
        db, store = self.db, self.store
        cached = await db.run(store.lookup, job.key)
        if cached is not None:
            if self._still_good(cached, job):
                return Outcome(cached, 0, 0, cached=True)
            await db.run(store.discard, job.key)
        if not await db.run(store.claim, job.key, seconds=self.lease):
            raise _ClaimedElsewhere(job.key)
        try:
            # Between our lookup and our claim, the other process may have finished it.
            cached = await db.run(store.lookup, job.key)
            if cached is not None:
                if self._still_good(cached, job):
                    return Outcome(cached, 0, 0, cached=True)
                await db.run(store.discard, job.key)
            segment, requests, retries = await self._synthesize(job)
            return Outcome(segment, requests, retries, cached=False)
        except Exception as exc:
            self._stop_now(exc)
            raise
        finally:
            with contextlib.suppress(sqlite3.Error):  # a lapsed claim frees it anyway
                await db.run(store.release, job.key)

    async def _stored(self, job: Job) -> tuple[Segment | None, StoredVerdict | None]:
        """The segment of ``job`` if it passes today's checks, and the gate's verdict."""
        cached, stored = await self.db.run(self.store.lookup_judged, job.key)
        if cached is not None and not self._still_good(cached, job):
            await self.db.run(self.store.discard, job.key)
            cached = None
        return cached, stored

    async def _run_judged(self, job: Job, retakes: Retakes) -> Outcome:
        cached, stored = await self._stored(job)
        if cached is not None and stored is not None and retakes.settled(stored):
            return retakes.settled_outcome(cached, stored)
        # Judging a segment may lead to its re-synthesis: that needs the claim too.
        if not await self.db.run(self.store.claim, job.key, seconds=self.lease):
            raise _ClaimedElsewhere(job.key)
        try:
            cached, stored = await self._stored(job)
            return await retakes.run(job, cached, stored)
        except Exception as exc:
            self._stop_now(exc)
            raise
        finally:
            with contextlib.suppress(sqlite3.Error):  # a lapsed claim frees it anyway
                await self.db.run(self.store.release, job.key)

    async def recheck(self, job: Job, outcome: Outcome) -> Outcome:
        """Judge a provisional pass again once the document is in (see :mod:`.retakes`)."""
        return outcome if self.retakes is None else await self.retakes.recheck(job, outcome)

    async def _synthesize(self, job: Job, again: int = 0) -> tuple[Segment, int, int]:
        """The chunk's audio from the service: (segment, requests, retries). ``again``
        counts the earlier answers the quality gate turned down."""
        db, store = self.db, self.store
        await db.run(store.begin, job.key, job.billing_chars)
        url = await db.run(store.pending_link, job.key, max_age=LINK_MAX_AGE)
        requests = attempt = broken_downloads = 0
        while True:
            if self._stopping:
                raise self.stop_reason or Stopped("the run was stopped")
            if not await db.run(store.claim, job.key, seconds=self.lease):  # renewed: ours
                raise _ClaimedElsewhere(job.key)  # ours lapsed during a long backoff
            try:
                if url is None:
                    requests += 1
                    audio = await self._request(job, attempt, again)
                    if audio.data is not None:
                        try:
                            segment = await db.run(
                                store.commit_bytes, job.key, audio.data, check=self._checker(job)
                            )
                        except AudioError as exc:
                            raise TransientError(f"the service sent unusable audio: {exc}") from exc
                        return segment, requests, attempt
                    assert audio.url is not None
                    url = audio.url
                    await self._note_link(job.key, url)
                segment = await self._fetch(job, url)
                return segment, requests, attempt
            except BadRequest as exc:
                await db.run(store.record_failure, job.key, str(exc))
                raise ChunkFailed(str(exc), attempts=attempt + 1) from exc
            except LinkExpired as exc:
                self.stats.resynthesized += 1
                await db.run(store.forget_link, job.key)
                url = None
                error: ProviderError = exc
                log.info("audio link expired; synthesizing the chunk again")
            except BadDownload as exc:
                error = exc
                broken_downloads += 1
                if broken_downloads >= BROKEN_LINK_LIMIT:  # the audio is bad, not the wire
                    self.stats.resynthesized += 1
                    await db.run(store.forget_link, job.key)
                    url, broken_downloads = None, 0
            except (RateLimited, TransientError) as exc:  # 429s were counted in _request
                error = exc
            attempt += 1
            await db.run(store.record_attempt, job.key)
            if attempt >= self.retries:
                message = f"gave up after {attempt} attempts: {error}"
                await db.run(store.record_failure, job.key, message)
                raise ChunkFailed(message, attempts=attempt) from error
            self.stats.retries += 1
            self._retries[job.key] += 1
            await self._sleep(self._delay(attempt, error))
