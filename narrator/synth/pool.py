"""The worker pool: concurrency, the rate limit, retries. All the timing lives here.

Workers take jobs from one queue shared by every document of a run. A request holds
one of ``concurrency`` slots and one tick of the rate limiter; downloads hold
neither, since they go to object storage rather than the API. Results are futures,
so documents collect their own chunks in order whatever order they finish in.

What is retried, and how (nothing else is):

- ``RateLimited`` (429): backoff, and the whole run slows down (:class:`AdaptiveRate`).
- ``TransientError`` (5xx, timeouts, dropped connections): backoff and resend.
- ``BadDownload`` (a short or broken body): fetch the same link again, so nothing is
  billed twice; after three broken downloads in a row, synthesize again.
- ``LinkExpired``: synthesize again.

A ``ChunkRefused`` (a 400, audio over the cap, a refused link) fails its chunk at once;
``StopRun`` (bad key, no credits, a full disk) stops the pool.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import (
    AudioError,
    BadDownload,
    BadRequest,
    ChunkFailed,
    ChunkRefused,
    ConnectFailed,
    InternalFailure,
    LinkExpired,
    NarratorError,
    ProviderError,
    RateLimited,
    SettingsRejected,
    Stopped,
    StopRun,
    TransientError,
    Unreachable,
)
from ..settings import default
from ..util.diskspace import disk_full, is_disk_full
from ..util.registry import REGISTRY
from ..util.wav import WavInfo
from .providers import Audio, Provider
from .quality import Gate, Measurement, Verdict
from .sanity import Format, check_segment, format_of
from .store import Segment, Store, StoredVerdict

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


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk to turn into audio."""

    key: str
    text: str
    billing_chars: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished job: its audio and what it took."""

    segment: Segment
    requests: int
    retries: int
    cached: bool
    # The quality gate's word, when it runs: its verdict, what it measured, how many
    # attempts were judged, and whether the segment is flagged (bad, kept anyway).
    verdict: Verdict | None = None
    measurement: Measurement | None = None
    attempts: int = 1
    flagged: bool = False


class _ClaimedElsewhere(Exception):
    """Another process sharing the cache is synthesizing this chunk right now."""


@dataclass
class PoolStats:
    """Counters for the report."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    resynthesized: int = 0
    downloads: int = 0
    rate_changes: list[tuple[float, float]] = field(default_factory=list)
    qa_resynthesized: int = 0  # bad segments synthesized again
    qa_flagged: int = 0  # segments kept although bad
    qa_budget_spent: bool = False


class AdaptiveRate:
    """Requests per minute, paced one start at a time, slowing down when the service throttles.

    Starts are spread evenly, never bunched: the upstream service throttles per second,
    so a minute's worth at once would fail. The pacing keeps its place across rate
    changes (the next start is one new interval after the last one), which is why this
    is not aiolimiter: its rate is fixed, and a fresh limiter per change lets a request
    through at once, straight into the service's empty allowance.

    On a 429 from a request started after the last cut, the rate is cut (by ``cut``) and
    the throttled rate becomes the ceiling; then it climbs back quickly to just under the
    ceiling and probes above it slowly, so a run settles near what the service allows.
    Every time read is the loop's clock.
    """

    def __init__(self, rpm: float, *, adaptive: bool = True, cut: float = 0.7) -> None:
        self.max_rpm = self.rpm = float(rpm)
        self.adaptive = adaptive
        self._cut = cut
        self._ceiling = float(rpm)
        self._successes = 0
        self._last_cut = float("-inf")
        self._last_start = float("-inf")
        self._next = float("-inf")  # no request may start before this loop time
        self._lock = asyncio.Lock()  # first come, first served
        self._changed = asyncio.Event()

    @property
    def interval(self) -> float:
        return 60.0 / self.rpm

    def _set(self, rpm: float) -> None:
        self.rpm = min(self.max_rpm, max(1.0, rpm))
        self._next = self._last_start + self.interval
        self._changed.set()  # a waiter re-reads its start time

    async def acquire(self) -> float:
        """Wait for the next start; returns the loop time of the start."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            while (wait := self._next - loop.time()) > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            now = loop.time()
            # A start the busy loop made a little late is made up for by the next one (never
            # more than half an interval, so no two starts are closer than that); a start
            # after an idle spell opens a new schedule.
            on_schedule = now - self._next <= 0.5 * self.interval
            self._next = (self._next if on_schedule else now) + self.interval
            self._last_start = now
            return now

    def throttled(self, started: float) -> bool:
        """A request started at ``started`` got a 429. True when the rate was cut."""
        # Requests sent before the last cut were paced at the old rate: they say nothing new.
        if not self.adaptive or started <= self._last_cut:
            return False
        self._ceiling = self.rpm
        self._set(self.rpm * self._cut)
        self._last_cut = asyncio.get_running_loop().time()
        self._successes = 0
        return True

    def succeeded(self) -> None:
        if not self.adaptive or self.rpm >= self.max_rpm:
            return
        self._successes += 1
        if self.rpm < 0.9 * self._ceiling:
            if self._successes >= 4:
                self._set(min(0.9 * self._ceiling, self.rpm + 0.1 * self._ceiling))
                self._successes = 0
        elif self._successes >= 10:
            self._set(self.rpm + 0.02 * self._ceiling)
            self._successes = 0


def _fail(future: asyncio.Future[Outcome], error: BaseException) -> None:
    if not future.done():  # an abort may have failed it already
        future.set_exception(error)


class Pool:
    """Runs jobs through a provider with bounded concurrency, a rate limit and retries."""

    def __init__(
        self,
        provider: Provider,
        store: Store,
        *,
        voice: str,
        # Unset knobs: what a default Settings has (one default per setting, there).
        concurrency: int = REGISTRY[default("provider")].concurrency,
        rpm: float = REGISTRY[default("provider")].rpm,
        retries: int = default("retries"),
        backoff_base: float = default("backoff_base"),
        backoff_max: float = default("backoff_max"),
        adaptive: bool = default("adaptive_rate"),
        max_segment_bytes: int = default("max_segment_bytes"),
        lease: float = 300.0,
        claim_poll: float = 0.25,
        gate: Gate | None = None,
        qa_retries: int = default("qa_retries"),
        qa_budget: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.store = store
        self.voice = voice
        self.concurrency = concurrency
        self.rate = AdaptiveRate(rpm, adaptive=adaptive)
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
                store,
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
                    self.store.release_reserve()
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

    def _note_link(self, key: str, url: str) -> None:
        """Write down a link just paid for, even on a full disk (from the store's reserve)."""
        try:
            self.store.record_link(key, url)
        except sqlite3.Error as exc:
            if not is_disk_full(exc) or not self.store.release_reserve():
                raise
            self.store.record_link(key, url)
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
            return await self.store.commit(job.key, temp, check=self._checker(job))
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
        cached = self.store.lookup(job.key)
        if cached is not None:
            if self._still_good(cached, job):
                return Outcome(cached, 0, 0, cached=True)
            self.store.discard(job.key)
        if not self.store.claim(job.key, seconds=self.lease):
            raise _ClaimedElsewhere(job.key)
        try:
            # Between our lookup and our claim, the other process may have finished it.
            cached = self.store.lookup(job.key)
            if cached is not None:
                if self._still_good(cached, job):
                    return Outcome(cached, 0, 0, cached=True)
                self.store.discard(job.key)
            segment, requests, retries = await self._synthesize(job)
            return Outcome(segment, requests, retries, cached=False)
        finally:
            with contextlib.suppress(sqlite3.Error):  # a lapsed claim frees it anyway
                self.store.release(job.key)

    def _stored(self, job: Job) -> tuple[Segment | None, StoredVerdict | None]:
        """The segment of ``job`` if it passes today's checks, and the gate's verdict."""
        cached, stored = self.store.lookup_judged(job.key)
        if cached is not None and not self._still_good(cached, job):
            self.store.discard(job.key)
            cached = None
        return cached, stored

    async def _run_judged(self, job: Job, retakes: Retakes) -> Outcome:
        cached, stored = self._stored(job)
        if cached is not None and stored is not None and retakes.settled(stored):
            return retakes.settled_outcome(cached, stored)
        # Judging a segment may lead to its re-synthesis: that needs the claim too.
        if not self.store.claim(job.key, seconds=self.lease):
            raise _ClaimedElsewhere(job.key)
        try:
            cached, stored = self._stored(job)
            return await retakes.run(job, cached, stored)
        finally:
            with contextlib.suppress(sqlite3.Error):  # a lapsed claim frees it anyway
                self.store.release(job.key)

    async def recheck(self, job: Job, outcome: Outcome) -> Outcome:
        """Judge a provisional pass again once the document is in (see :mod:`.retakes`)."""
        return outcome if self.retakes is None else await self.retakes.recheck(job, outcome)

    async def _synthesize(self, job: Job, again: int = 0) -> tuple[Segment, int, int]:
        """The chunk's audio from the service: (segment, requests, retries). ``again``
        counts the earlier answers the quality gate turned down."""
        store = self.store
        store.begin(job.key, job.billing_chars)
        url = store.pending_link(job.key, max_age=LINK_MAX_AGE)
        requests = attempt = broken_downloads = 0
        while True:
            if self._stopping:
                raise self.stop_reason or Stopped("the run was stopped")
            if not store.claim(job.key, seconds=self.lease):  # renewed: this attempt is ours
                raise _ClaimedElsewhere(job.key)  # ours lapsed during a long backoff
            try:
                if url is None:
                    requests += 1
                    audio = await self._request(job, attempt, again)
                    if audio.data is not None:
                        try:
                            segment = await store.commit_bytes(
                                job.key, audio.data, check=self._checker(job)
                            )
                        except AudioError as exc:
                            raise TransientError(f"the service sent unusable audio: {exc}") from exc
                        return segment, requests, attempt
                    assert audio.url is not None
                    url = audio.url
                    self._note_link(job.key, url)
                segment = await self._fetch(job, url)
                return segment, requests, attempt
            except ChunkRefused as exc:
                store.record_failure(job.key, str(exc))
                raise ChunkFailed(str(exc), attempts=attempt + 1) from exc
            except LinkExpired as exc:
                self.stats.resynthesized += 1
                store.forget_link(job.key)
                url = None
                error: ProviderError = exc
                log.info("audio link expired; synthesizing the chunk again")
            except BadDownload as exc:
                error = exc
                broken_downloads += 1
                if broken_downloads >= BROKEN_LINK_LIMIT:  # the audio is bad, not the wire
                    self.stats.resynthesized += 1
                    store.forget_link(job.key)
                    url, broken_downloads = None, 0
            except (RateLimited, TransientError) as exc:  # 429s were counted in _request
                error = exc
            attempt += 1
            store.record_attempt(job.key)
            if attempt >= self.retries:
                message = f"gave up after {attempt} attempts: {error}"
                store.record_failure(job.key, message)
                raise ChunkFailed(message, attempts=attempt) from error
            self.stats.retries += 1
            self._retries[job.key] += 1
            await self._sleep(self._delay(attempt, error))
