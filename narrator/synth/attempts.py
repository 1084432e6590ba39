"""One chunk's attempts: requests, downloads and retries until its audio is in the store.

What is retried, and how (nothing else is):

- ``RateLimited`` (429): backoff, and the whole run slows down (:mod:`.rate`).
- ``TransientError`` (5xx, timeouts, dropped connections): backoff and resend.
- ``BadDownload`` (a short or broken body): fetch the same link again, so nothing is
  billed twice; after three broken downloads in a row, synthesize again.
- ``LinkExpired``: synthesize again.

A ``ChunkRefused`` (a 400, audio over the cap, a refused link) fails its chunk at once.
A request holds one of ``concurrency`` slots (and one of
the shared ``slots``, when several workers share an account) and
one tick of the rate limiter; downloads hold neither, since they go to object storage
rather than the API.

Until the service has answered one request well, requests go one at a time (the
probe): a wrong key, voice, model or address then costs one request, not one per
chunk. Before that first good answer, a refused connection or an unknown host stops
the run (:class:`Unreachable`), and so does a 400 that is not about the chunk's text
(:class:`SettingsRejected`); afterwards they are what they always are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable

from ..errors import (
    AudioError,
    BadDownload,
    BadRequest,
    ChunkFailed,
    ChunkRefused,
    ConnectFailed,
    LinkExpired,
    NarratorError,
    ProviderError,
    RateLimited,
    SettingsRejected,
    TransientError,
    Unreachable,
)
from ..store import Segment
from ..store.thread import StoreThread
from ..util.diskspace import is_disk_full
from ..util.wav import HEADER_PROBE, WavInfo, parse_wav
from .jobs import Job, Made, PoolStats, Started
from .measure import Measurement, measure_pcm
from .providers import Audio, Provider
from .rate import Rate, Slots
from .sanity import Format, check_segment, format_of

__all__ = [
    "BROKEN_LINK_LIMIT",
    "LINK_MAX_AGE",
    "Attempts",
    "ClaimedElsewhere",
]

log = logging.getLogger("narrator")

# Signed links live about 24 hours; a link older than this is not worth trying.
LINK_MAX_AGE = 20 * 3600.0
# A link whose download comes back broken this many times running is synthesized again.
BROKEN_LINK_LIMIT = 3
# A downloaded segment up to this size is held in memory and written once by the store;
# a longer one is streamed to a file (about 2 MB is 40 s of 24 kHz speech).
KEEP_BYTES = 8 * 1024 * 1024
# A claim taken or renewed less than this share of the lease ago is not renewed before
# an attempt: the attempt still starts with nine tenths of the lease ahead of it.
FRESH_CLAIM = 0.1
# A 400 whose message names the text is about that chunk; any other 400 on the first
# request (the voice, the model, the body) would be every chunk's answer.
_ABOUT_TEXT = re.compile(r"\b(text|input|characters?|length|content|too long)\b", re.IGNORECASE)


class ClaimedElsewhere(Exception):
    """Another process sharing the cache is synthesizing this chunk right now."""


class Attempts:
    """Makes one chunk's audio through the provider, retrying what is worth retrying (see
    the module docstring); the pool's workers call :meth:`synthesize` under a claim.

    ``progressed()`` notes that a chunk moved (the watchdog reads it); ``stopped()`` is
    what to raise rather than start more work, when the run is stopping.
    """

    def __init__(
        self,
        provider: Provider,
        db: StoreThread,
        *,
        voice: str,
        rate: Rate,
        stats: PoolStats,
        concurrency: int,
        retries: int,
        backoff_base: float,
        backoff_max: float,
        max_segment_bytes: int,
        lease: float,
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        progressed: Callable[[], None],
        stopped: Callable[[], NarratorError | None],
        measure: bool = False,
        slots: Slots | None = None,
    ) -> None:
        self.provider = provider
        # Measure new audio for the quality gate as it is stored, from memory.
        self.measure = measure
        self._claims: dict[str, float] = {}  # key: loop time its claim was taken or renewed
        self.db = db
        self.store = db.store
        self.voice = voice
        self.rate = rate
        self.stats = stats
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_segment_bytes = max_segment_bytes
        # A claim outlives one attempt (request and download); it is renewed before each.
        self.lease = lease
        self._sleep = sleep
        self._rng = rng
        self._progressed = progressed
        self._stopped = stopped
        self._slots = asyncio.Semaphore(concurrency)
        self._shared = slots  # the account's slots, held inside this process's own
        self._answered = False  # the service has answered one request well
        self._probe = asyncio.Lock()
        self.requests: Counter[str] = Counter()  # requests sent per key
        self.retries_of: Counter[str] = Counter()  # retries per key
        # The format of the first segment stored in this run; every other must match it.
        self.format: Format | None = None
        self.requests_in_flight = 0
        self.downloads_in_flight = 0

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
                f"{exc} (voice {job.voice or self.voice!r}); nothing else was sent, since every "
                "request would be refused the same way"
            ) from exc
        self._answered = True
        return audio

    async def _send(self, job: Job, attempt: int, again: int = 0) -> Audio:
        shared = self._shared.hold() if self._shared is not None else contextlib.nullcontext()
        async with self._slots, shared:
            if (stop := self._stopped()) is not None:
                raise stop
            started = await self.rate.acquire()
            self.stats.requests += 1
            self.requests[job.key] += 1
            # Unique per request: a service that deduplicates by id must not hand a
            # re-synthesis the answer the gate turned down.
            retake = f"q{again}-" if again else ""
            request_id = f"narrator-{job.key[:24]}-{retake}{attempt}"
            self.requests_in_flight += 1
            self.stats.timeline.started(
                started, in_flight=self.requests_in_flight, rpm=self.rate.rpm
            )
            try:
                audio = await self.provider.synthesize(
                    job.text, voice=job.voice or self.voice, request_id=request_id
                )
            except RateLimited:
                self.stats.throttled += 1
                cut = await self.rate.throttled(started)
                self.stats.timeline.throttled(started, cut=cut)  # counted where it started
                if cut:
                    self.stats.rate_changes.append((started, self.rate.rpm))
                    log.warning(
                        "rate limited by the service: slowing to %.0f requests/minute",
                        self.rate.rpm,
                    )
                raise
            finally:
                self.requests_in_flight -= 1
                self._progressed()
        await self.rate.succeeded()
        return audio

    async def _note_link(self, key: str, url: str) -> None:
        """Write down a link just paid for, even on a full disk: then into the store's
        reserve, in place, which needs no free space that another writer could have taken
        (the run stopping for the full disk deletes nothing it needs)."""
        db, store = self.db, self.store
        try:
            await db.run(store.record_link, key, url)
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            if not await db.run(store.note_link_in_reserve, key, url):
                # No reserve to write into: room given back may still take the row.
                await db.run(store.release_reserve)
                await db.run(store.record_link, key, url)
            raise  # the link is kept; the full disk still stops the run

    def _checker(self, job: Job) -> Callable[[WavInfo], None]:
        """The check a new segment of ``job`` passes before it is stored."""

        def check(info: WavInfo) -> None:
            check_segment(info, billing_chars=job.billing_chars, expected=self.format)
            if self.format is None:
                self.format = format_of(info)

        return check

    def _keep(self, job: Job, data: bytes) -> tuple[Segment, Measurement | None]:
        """On the store's thread: audio held in memory into the store, and measured for the
        quality gate while it is at hand (the gate need not read the file back)."""
        segment = self.store.commit_bytes(job.key, data, check=self._checker(job))
        if not self.measure:
            return segment, None
        info = parse_wav(data[:HEADER_PROBE], len(data))
        pcm = memoryview(data)[info.data_offset : info.data_offset + info.data_size]
        return segment, measure_pcm(pcm, rate=info.rate, channels=info.channels, width=info.width)

    async def _fetch(self, job: Job, url: str) -> tuple[Segment, Measurement | None]:
        temp = self.store.temp_path(job.key)
        self.stats.downloads += 1
        self.downloads_in_flight += 1
        written = True  # unless the audio comes back in memory: then no file was made
        try:
            data = await self.provider.download(
                url, temp, max_bytes=self.max_segment_bytes, keep=KEEP_BYTES
            )
            if data is not None:
                written = False
                return await self.db.run(self._keep, job, data)
            segment = await self.db.run(self.store.commit, job.key, temp, check=self._checker(job))
            return segment, None
        except AudioError as exc:
            # Counted as a broken download: after a few, the chunk is synthesized again.
            raise BadDownload(f"the service sent unusable audio: {exc}") from exc
        finally:
            self.downloads_in_flight -= 1
            self._progressed()
            if written:
                temp.unlink(missing_ok=True)

    def _start(self, job: Job) -> str | None:
        """On the store's thread: the chunk's row, and the link of audio already paid for."""
        self.store.begin(job.key, job.billing_chars)
        return self.store.pending_link(job.key, max_age=LINK_MAX_AGE)

    def claimed(self, key: str, at: float) -> None:
        """The pool claimed ``key`` at loop time ``at`` (or earlier)."""
        self._claims[key] = at

    def released(self, key: str) -> None:
        self._claims.pop(key, None)

    async def _renew(self, key: str) -> None:
        """Renew the claim on ``key`` unless it was taken or renewed a moment ago."""
        now = asyncio.get_running_loop().time()
        if now - self._claims.get(key, -math.inf) < self.lease * FRESH_CLAIM:
            return
        if not await self.db.run(self.store.claim, key, seconds=self.lease):  # renewed: ours
            raise ClaimedElsewhere(key)  # ours lapsed during a long backoff
        self._claims[key] = now

    async def synthesize(self, job: Job, again: int = 0, started: Started | None = None) -> Made:
        """The chunk's audio from the service. ``again`` counts the earlier answers the
        quality gate turned down; ``started`` is what the claim found (None: ask)."""
        db, store = self.db, self.store
        url = started.url if started is not None else await db.run(self._start, job)
        requests = attempt = broken_downloads = 0
        while True:
            if (stop := self._stopped()) is not None:
                raise stop
            await self._renew(job.key)
            try:
                if url is None:
                    requests += 1
                    audio = await self._request(job, attempt, again)
                    if audio.data is not None:
                        try:
                            segment, m = await db.run(self._keep, job, audio.data)
                        except AudioError as exc:
                            raise TransientError(f"the service sent unusable audio: {exc}") from exc
                        return Made(segment, requests, attempt, m)
                    assert audio.url is not None
                    url = audio.url
                    await self._note_link(job.key, url)
                segment, m = await self._fetch(job, url)
                return Made(segment, requests, attempt, m)
            except ChunkRefused as exc:
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
            self.stats.timeline.retried(asyncio.get_running_loop().time())
            self.retries_of[job.key] += 1
            await self._sleep(self._delay(attempt, error))
