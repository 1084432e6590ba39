"""The quality gate on real speech (eSpeak NG, 22050 Hz, and the emulator's 24 kHz) and on
the emulator's three kinds of bad audio."""

from __future__ import annotations

import asyncio
import random
import warnings
from pathlib import Path

import pytest

from narrator.store import Store, segment_key
from narrator.store.thread import StoreThread
from narrator.synth.espeakng import get_engine
from narrator.synth.pool import Job, Outcome, Pool, PoolConfig
from narrator.synth.providers import Audio
from narrator.synth.quality import MIN_SAMPLES, NOISE_LIMIT, Gate, Measurement, measure_pcm
from narrator.tools.emulator.audio import espeak_wav as _espeak_wav
from narrator.tools.emulator.audio import spoil as _spoil
from narrator.tools.emulator.audio import tone_wav as _tone_wav
from narrator.util.wav import parse_wav, tone_pcm

from .stores import StoreBackend

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ENGLISH = [
    f"This is sentence number {i}, which is here to be read aloud. Another one follows it."
    for i in range(12)
]
CHINESE = [f"这是第{i}个句子，它在这里是为了被朗读出来。后面还有一句话。" for i in range(12)]
VOICE = "espeak\0Cherry"


def espeak(text: str) -> Measurement:
    """eSpeak's own output: 22050 Hz, not the 24 kHz of the service."""
    engine = get_engine()
    return measure_pcm(engine.synthesize(text, "Cherry"), rate=engine.sample_rate)


def of_wav(wav: bytes) -> Measurement:
    info = parse_wav(wav, len(wav))
    pcm = wav[info.data_offset : info.data_offset + info.data_size]
    return measure_pcm(pcm, rate=info.rate, channels=info.channels, width=info.width)


def warmed(texts: list[str]) -> Gate:
    gate = Gate()
    for text in texts:
        m = espeak(text)
        assert gate.judge(VOICE, text, m).ok
        gate.passed(VOICE, text, m)
    return gate


@pytest.mark.parametrize(
    "text",
    ["Yes.", "1234567890", "2024", "...", "—", "「」", "OK 好的 fine", "你好。", "Hi", "¿?"],
)
def test_awkward_chunks_are_fine_cold_and_warm(text: str) -> None:
    m = espeak(text)
    assert Gate().judge(VOICE, text, m).ok, Gate().judge(VOICE, text, m)
    gate = warmed(ENGLISH + CHINESE)
    verdict = gate.judge(VOICE, text, m)
    assert verdict.ok, verdict


def test_a_mixed_book_is_judged_per_script_and_a_short_one_on_the_prior() -> None:
    gate = warmed([t for pair in zip(ENGLISH, CHINESE, strict=True) for t in pair])
    mixed = "Hello there, 你好，我们今天要讲一个故事。 And then we go home."
    verdict = gate.judge(VOICE, mixed, espeak(mixed))
    assert verdict.ok and not verdict.provisional
    short = Gate().judge(VOICE, ENGLISH[0], espeak(ENGLISH[0]))
    assert short.ok and short.provisional


@pytest.mark.parametrize("make", [_espeak_wav, _tone_wav])
@pytest.mark.parametrize("kind", ["silent", "cut", "runaway"])
def test_each_bad_kind_is_caught_once_the_voice_is_known(make: object, kind: str) -> None:
    gate = Gate()
    for text in ENGLISH[1:]:
        m = of_wav(make("Cherry", text))  # type: ignore[operator]
        gate.passed(VOICE, text, m)
    assert len(ENGLISH[1:]) >= MIN_SAMPLES
    bad = of_wav(_spoil(make("Cherry", ENGLISH[0]), kind, random.Random(1)))  # type: ignore[operator]
    verdict = gate.judge(VOICE, ENGLISH[0], bad)
    assert verdict.kind == kind, verdict
    assert not gate.judge(VOICE, ENGLISH[0], of_wav(make("Cherry", ENGLISH[0]))).kind  # type: ignore[operator]


def test_silent_and_runaway_need_no_statistics() -> None:
    rng = random.Random(2)
    good = _espeak_wav("Cherry", ENGLISH[0])
    assert Gate().judge(VOICE, ENGLISH[0], of_wav(_spoil(good, "silent", rng))).kind == "silent"
    assert Gate().judge(VOICE, ENGLISH[0], of_wav(_spoil(good, "runaway", rng))).kind == "runaway"
    empty = measure_pcm(b"", rate=24000)
    assert Gate().judge(VOICE, "Hello.", empty).kind == "silent"


def test_a_long_pause_then_sound_is_runaway_unless_a_paragraph_break_explains_it() -> None:
    rate = 24000
    tone = tone_pcm(1.5, rate)
    pcm = tone + b"\0" * (2 * int(2.4 * rate)) + tone
    m = measure_pcm(pcm, rate=rate)
    assert 2.3 < m.pause < 2.5
    text = "One short sentence here. And another one."
    assert Gate().judge(VOICE, text, m).kind == "runaway"
    assert Gate().judge(VOICE, text.replace(". ", ".\n\n"), m).ok


def test_formats_other_than_16_bit_mono_are_measured_alike() -> None:
    pcm = tone_pcm(2.0, 22050)
    mono = measure_pcm(pcm, rate=22050)
    stereo = measure_pcm(audioop.tostereo(pcm, 2, 1, 1), rate=22050, channels=2)
    eight = measure_pcm(audioop.bias(audioop.lin2lin(pcm, 2, 1), 1, 128), rate=22050, width=1)
    for m in (stereo, eight):
        assert abs(m.span - mono.span) < 0.05 and m.voiced > 1.9 and m.noise == 0


def test_noise_is_told_from_speech() -> None:
    rng = random.Random(3)
    noise = audioop.mul(rng.randbytes(2 * 24000 * 2), 2, 0.3)
    assert measure_pcm(noise, rate=24000).noise >= 1.5
    assert espeak(" ".join(ENGLISH)).noise < NOISE_LIMIT / 2  # an "s" is noise, briefly


class ScriptedProvider:
    """Answers each request with the next WAV of a script (inline, like the binary shape)."""

    name = "scripted"
    model = "scripted-1"
    identity = "scripted"

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests = 0

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        self.requests += 1
        return Audio(data=self.answers.pop(0))

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise AssertionError("inline answers only")

    async def aclose(self) -> None:
        pass


async def run_pool(store: Store, provider: ScriptedProvider, *, retries: int = 2) -> Outcome:
    text = ENGLISH[0]
    job = Job(segment_key(provider="scripted", voice="Cherry", text=text), text, len(text))
    config = PoolConfig("Cherry", 4, 6000, qa_retries=retries, backoff_base=0)
    async with Pool(provider, store, config, gate=Gate()) as pool:  # type: ignore[arg-type]
        outcome = await pool.submit(job)
        return await pool.recheck(job, outcome)


async def test_the_least_bad_attempt_is_kept_flagged_and_never_redone(
    tmp_path: Path, backend: StoreBackend
) -> None:
    good = _tone_wav("Cherry", ENGLISH[0])
    rng = random.Random(4)
    silent, runaway = _spoil(good, "silent", rng), _spoil(good, "runaway", rng)
    store = backend.open(tmp_path)
    provider = ScriptedProvider([silent, runaway, silent])
    outcome = await run_pool(store, provider)
    assert provider.requests == 3
    assert outcome.flagged and outcome.attempts == 3 and outcome.verdict is not None
    assert outcome.verdict.kind == "runaway"  # 8 s of noise beats no speech at all
    assert outcome.segment.path.read_bytes() == runaway
    assert not list((tmp_path / "segments" / "qa").iterdir())  # nothing left aside
    stored = store.verdict(outcome.segment.key)
    assert stored is not None and stored.status == "flagged"
    again = ScriptedProvider([])
    cached = await run_pool(store, again)  # a rerun keeps it: no request, still flagged
    assert again.requests == 0 and cached.cached and cached.flagged
    store.close()


async def test_a_bad_answer_then_a_good_one_passes(tmp_path: Path, backend: StoreBackend) -> None:
    good = _tone_wav("Cherry", ENGLISH[0])
    store = backend.open(tmp_path)
    provider = ScriptedProvider([_spoil(good, "silent", random.Random(5)), good])
    outcome = await run_pool(store, provider)
    assert provider.requests == 2 and not outcome.flagged and outcome.attempts == 2
    assert outcome.segment.path.read_bytes() == good
    stored = store.verdict(outcome.segment.key)
    assert stored is not None and stored.status == "provisional"  # too little to go on
    assert not list((tmp_path / "segments" / "qa").iterdir())
    store.close()


async def test_no_retries_and_the_gate_off(tmp_path: Path) -> None:
    good = _tone_wav("Cherry", ENGLISH[0])
    silent = _spoil(good, "silent", random.Random(6))
    provider = ScriptedProvider([silent])
    store = Store(tmp_path / "a")
    outcome = await run_pool(store, provider, retries=0)
    store.close()
    assert provider.requests == 1 and outcome.flagged and outcome.attempts == 1
    text = ENGLISH[0]
    job = Job(segment_key(provider="scripted", voice="Cherry", text=text), text, len(text))
    off = ScriptedProvider([silent])
    store = Store(tmp_path / "b")
    async with Pool(off, store, PoolConfig("Cherry", 4, 6000)) as pool:  # type: ignore[arg-type]
        plain = await pool.submit(job)
    store.close()
    assert plain.verdict is None and not plain.flagged


async def test_chunks_judged_at_once_share_the_budget_and_never_overspend_it(
    tmp_path: Path,
) -> None:
    # Every answer is silent: each chunk wants its retries, and several are judged while
    # the others wait on the store, so the budget must be taken when it is checked.
    texts = ENGLISH[:4]
    silent = _spoil(_tone_wav("Cherry", texts[0]), "silent", random.Random(7))
    provider = ScriptedProvider([silent] * 20)
    db = StoreThread()
    await db.open(tmp_path)
    jobs = [Job(segment_key(provider="scripted", voice="Cherry", text=t), t, len(t)) for t in texts]
    config = PoolConfig("Cherry", 4, 6000, qa_retries=2, qa_budget=1, backoff_base=0)
    async with Pool(provider, db, config, gate=Gate()) as pool:  # type: ignore[arg-type]
        outcomes = await asyncio.gather(*(pool.submit(job) for job in jobs))
    await db.close()
    assert len(set(texts)) == 4 and all(o.flagged for o in outcomes)
    assert provider.requests == 4 + 1  # one re-synthesis in the whole run, as budgeted
