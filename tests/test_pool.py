"""The worker pool with a scripted fake provider and a real store; backoff is injected."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pytest

from narrator.errors import (
    AuthError,
    BadDownload,
    BadRequest,
    LinkExpired,
    OutOfCredits,
    RateLimited,
    TransientError,
)
from narrator.store import Store, segment_key
from narrator.synth.pool import ChunkFailed, Job, Pool, PoolConfig, Stopped
from narrator.synth.providers import Audio
from narrator.util.wav import tone_pcm, wav_bytes

from .stores import StoreBackend
from .test_rate import FakeClock

WAV = wav_bytes(tone_pcm(0.05, 24000), 24000)


class FakeProvider:
    """Answers from a script: per text, a queue of exceptions to raise before succeeding."""

    name = "fake"
    model = "fake-1"
    identity = "fake"

    def __init__(
        self,
        *,
        latency: float = 0.0,
        inline: bool = False,
        failures: dict[str, Iterable[Exception]] | None = None,
        download_failures: Iterable[Exception] = (),
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock
        self.latency = latency
        self.inline = inline
        self.failures = {k: deque(v) for k, v in (failures or {}).items()}
        self.download_failures = deque(download_failures)
        self.in_memory = False  # downloads come back as bytes, when the caller keeps them
        self.in_flight = self.max_in_flight = 0
        self.starts: list[float] = []
        self.texts: list[str] = []
        self.downloads = 0

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        self.starts.append(self.clock.now() if self.clock else asyncio.get_running_loop().time())
        self.texts.append(text)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            queue = self.failures.get(text)
            if queue:
                raise queue.popleft()
        finally:
            self.in_flight -= 1
        return Audio(data=WAV) if self.inline else Audio(url=f"http://fake/{text}.wav")

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        self.downloads += 1
        if self.download_failures:
            raise self.download_failures.popleft()
        if self.in_memory and len(WAV) <= keep:
            return WAV
        dest.write_bytes(WAV)
        return None

    async def aclose(self) -> None:
        pass


def job(text: str) -> Job:
    return Job(segment_key(provider="fake", voice="Cherry", text=text), text, len(text))


@pytest.fixture
def store(tmp_path: Path, backend: StoreBackend) -> Store:
    s = backend.open(tmp_path / "cache")
    yield s  # type: ignore[misc]
    s.close()


def make_pool(provider: FakeProvider, store: Store, **kw: object) -> Pool:
    """A pool of ``provider``; ``kw`` are :class:`PoolConfig` fields or the pool's own."""
    own = {name: kw.pop(name) for name in ("gate", "sleep", "rng", "clock") if name in kw}
    config: dict[str, object] = {"voice": "Cherry", "concurrency": 4, "rpm": 60_000, "retries": 4}
    config.update(kw)
    config.setdefault("backoff_base", 0.0)
    return Pool(provider, store, PoolConfig(**config), **own)  # type: ignore[arg-type]


async def test_concurrency_is_never_exceeded(store: Store) -> None:
    provider = FakeProvider(latency=0.02)
    async with make_pool(provider, store, concurrency=3) as pool:
        outcomes = await asyncio.gather(*(pool.submit(job(f"t{i}")) for i in range(20)))
    assert provider.max_in_flight == 3
    assert len(outcomes) == 20 and all(not o.cached for o in outcomes)


async def test_pool_never_starts_more_than_rpm_over_60_in_a_second(store: Store) -> None:
    clock = FakeClock(auto=True)  # the limiter's time: the test takes milliseconds
    provider = FakeProvider(latency=0.01, clock=clock)
    rpm = 600
    async with make_pool(provider, store, concurrency=8, rpm=rpm, clock=clock) as pool:
        await asyncio.gather(*(pool.submit(job(f"t{i}")) for i in range(12)))
    starts = sorted(provider.starts)
    for t in starts:  # about rpm/60: one more where a late start was made up for
        assert sum(t <= s < t + 1 for s in starts) <= math.ceil(rpm / 60) + 1


async def test_results_map_to_their_jobs_whatever_the_order(store: Store) -> None:
    provider = FakeProvider(latency=0.0, failures={"slow": [TransientError("x")] * 2})
    async with make_pool(provider, store) as pool:
        futures = [pool.submit(job(t)) for t in ("slow", "fast", "medium")]
        outcomes = await asyncio.gather(*futures)
    for text, outcome in zip(("slow", "fast", "medium"), outcomes, strict=True):
        assert outcome.segment.key == job(text).key
    assert outcomes[0].retries == 2 and outcomes[0].requests == 3


async def test_same_key_twice_is_one_request(store: Store) -> None:
    provider = FakeProvider()
    async with make_pool(provider, store) as pool:
        a, b = pool.submit(job("same")), pool.submit(job("same"))
        await asyncio.gather(a, b)
    assert provider.texts == ["same"]


async def test_transient_errors_are_retried_until_the_budget_runs_out(store: Store) -> None:
    provider = FakeProvider(failures={"bad": [TransientError("503")] * 10})
    async with make_pool(provider, store, retries=3) as pool:
        with pytest.raises(ChunkFailed, match="gave up after 3 attempts"):
            await pool.submit(job("bad"))
        ok = await pool.submit(job("good"))
    assert provider.texts.count("bad") == 3
    assert ok.requests == 1
    assert store.attempts(job("bad").key) == 3


async def test_bad_request_is_not_retried(store: Store) -> None:
    provider = FakeProvider(failures={"bad": [BadRequest("text too long")]})
    async with make_pool(provider, store) as pool:
        with pytest.raises(ChunkFailed, match="text too long"):
            await pool.submit(job("bad"))
    assert provider.texts == ["bad"]


@pytest.mark.parametrize("fatal", [AuthError("401"), OutOfCredits("403")])
async def test_fatal_errors_stop_the_run(store: Store, fatal: Exception) -> None:
    provider = FakeProvider(latency=0.01, failures={"t0": [fatal]})
    async with make_pool(provider, store, concurrency=1) as pool:
        futures = [pool.submit(job(f"t{i}")) for i in range(10)]
        results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[0], type(fatal))
    assert all(isinstance(r, (type(fatal), Stopped)) for r in results[1:]), results
    assert provider.texts == ["t0"]  # nothing was sent after the fatal answer
    assert pool.stop_reason is results[0]


async def test_rate_limits_slow_the_run_and_honour_retry_after(store: Store) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    provider = FakeProvider(failures={"t0": [RateLimited("429", retry_after=3.0)]})
    async with make_pool(provider, store, rpm=600, sleep=record, backoff_max=30.0) as pool:
        outcome = await pool.submit(job("t0"))
    assert slept == [3.0]
    assert outcome.requests == 2
    assert pool.rate.rpm == pytest.approx(420)
    assert pool.stats.throttled == 1


async def test_backoff_is_full_jitter_within_the_cap(store: Store) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    provider = FakeProvider(failures={"t": [TransientError("500")] * 5})
    async with make_pool(
        provider, store, sleep=record, retries=6, backoff_base=1.0, backoff_max=5.0
    ) as pool:
        await pool.submit(job("t"))
    assert len(slept) == 5
    for attempt, delay in enumerate(slept, start=1):
        assert 0 <= delay <= min(5.0, 2**attempt)


async def test_broken_download_is_fetched_again_without_a_new_request(store: Store) -> None:
    provider = FakeProvider(download_failures=[BadDownload("short"), BadDownload("short")])
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(job("t"))
    assert outcome.requests == 1 and provider.downloads == 3


async def test_expired_link_is_synthesized_again(store: Store) -> None:
    provider = FakeProvider(download_failures=[LinkExpired("403")])
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(job("t"))
    assert outcome.requests == 2 and pool.stats.resynthesized == 1


async def test_inline_audio_is_stored(store: Store) -> None:
    provider = FakeProvider(inline=True)
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(job("t"))
    assert outcome.segment.path.read_bytes() == WAV and provider.downloads == 0


async def test_finished_segments_are_not_requested_again(store: Store) -> None:
    provider = FakeProvider()
    async with make_pool(provider, store) as pool:
        await asyncio.gather(*(pool.submit(job(f"t{i}")) for i in range(5)))
    again = FakeProvider()
    async with make_pool(again, store) as pool:
        outcomes = await asyncio.gather(*(pool.submit(job(f"t{i}")) for i in range(5)))
    assert again.texts == [] and all(o.cached for o in outcomes)


async def test_a_link_saved_before_a_crash_is_downloaded_not_billed_again(store: Store) -> None:
    key = job("t").key
    store.begin(key, 1)
    store.record_link(key, "http://fake/t.wav")
    provider = FakeProvider()
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(job("t"))
    assert provider.texts == [] and outcome.requests == 0 and provider.downloads == 1


async def test_a_cached_segment_that_fails_todays_checks_is_made_again(store: Store) -> None:
    # Stored before the checks existed: ten minutes of audio for a three-word chunk.
    stale = job("Three words here.")
    store.commit_bytes(stale.key, wav_bytes(b"\0" * 24_000 * 2 * 600, 24_000))
    old_path = store.lookup(stale.key).path  # type: ignore[union-attr]
    provider = FakeProvider(inline=True)
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(stale)
    assert not outcome.cached and provider.texts == ["Three words here."]
    assert outcome.segment.seconds == pytest.approx(0.05)
    assert store.lookup(stale.key) == outcome.segment and old_path == outcome.segment.path


async def test_a_segment_unlike_the_runs_is_refused_then_the_chunk_fails(store: Store) -> None:
    class OtherRate(FakeProvider):
        async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
            await super().synthesize(text, voice=voice, request_id=request_id)
            rate = 24_000 if text == "first" else 16_000
            return Audio(data=wav_bytes(tone_pcm(0.05, rate), rate))

    provider = OtherRate()
    async with make_pool(provider, store, retries=2) as pool:
        first = await pool.submit(job("first"))
        with pytest.raises(ChunkFailed, match="unlike the run's other segments"):
            await pool.submit(job("second"))
    assert first.segment.rate == 24_000 and pool.format == (24_000, 1, 2)
    assert store.lookup(job("second").key) is None  # never stored
    assert provider.texts == ["first", "second", "second"]


@pytest.mark.parametrize("in_memory", [True, False])
async def test_a_download_is_stored_whether_held_in_memory_or_in_a_file(
    store: Store, in_memory: bool
) -> None:
    provider = FakeProvider()
    provider.in_memory = in_memory
    async with make_pool(provider, store) as pool:
        outcome = await pool.submit(job("hello"))
    assert outcome.segment.path.read_bytes() == WAV
    assert store.lookup(job("hello").key) == outcome.segment
    assert not list((store.root / "segments" / "tmp").glob("*.part"))  # nothing left behind


class CountingStore(Store):
    """A real store that counts the claims taken or renewed."""

    claims = 0

    def claim(self, key: str, *, seconds: float, billing_chars: int | None = None) -> bool:
        self.claims += 1
        return super().claim(key, seconds=seconds, billing_chars=billing_chars)


@pytest.mark.parametrize(("lease", "claims"), [(300.0, 1), (0.0, 3)])
async def test_a_claim_is_renewed_before_an_attempt_unless_it_is_fresh(
    tmp_path: Path, lease: float, claims: int
) -> None:
    store = CountingStore(tmp_path / "cache")
    provider = FakeProvider(failures={"t": [TransientError("x")]})
    try:
        async with make_pool(provider, store, lease=lease) as pool:
            outcome = await pool.submit(job("t"))
    finally:
        store.close()
    assert outcome.requests == 2
    # Taken once; with a lease of 300 s both attempts start within a tenth of it, with
    # none each attempt renews it first.
    assert store.claims == claims


async def test_the_gate_measures_audio_held_in_memory_as_it_would_the_file(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from narrator.synth import retakes
    from narrator.synth.measure import measure_file
    from narrator.synth.quality import Gate

    def unread(path: Path) -> None:
        raise AssertionError("the gate read back a segment it had in memory")

    monkeypatch.setattr(retakes, "measure_file", unread)
    provider = FakeProvider()
    provider.in_memory = True
    async with make_pool(provider, store, gate=Gate()) as pool:
        outcome = await pool.submit(job("hello"))
    assert outcome.measurement is not None
    assert outcome.measurement == measure_file(outcome.segment.path)


def test_the_pool_config_is_read_from_the_settings() -> None:
    from narrator.settings import Settings

    settings = Settings(provider="espeak", rpm=120, concurrency=3, request_timeout=30, qa_budget=5)
    config = PoolConfig.of(settings, chunks=200)
    assert (config.voice, config.rpm, config.concurrency) == ("Cherry", 120, 3)
    assert config.lease == 2 * 30 + 60 and config.retries == settings.retries
    assert config.qa_budget == 10  # 5% of 200 chunks
    assert PoolConfig.of(settings, chunks=10).qa_budget == settings.qa_retries  # at least
    assert PoolConfig.of(settings).qa_budget is None
