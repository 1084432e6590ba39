"""The offline eSpeak NG voice: real audio, distinct voices, safe from many threads."""

from __future__ import annotations

import array
import itertools
import threading

import pytest

from narrator.chunks.language import script_language
from narrator.synth.espeakng import VOICES, get_engine

AIML_VOICES = (
    "Cherry Ethan Nofish Jennifer Ryan Katerina Elias Jada Dylan "
    "Sunny Li Marcus Roy Peter Rocky Kiki Eric"
).split()

ENGLISH = "The quick brown fox jumps over the lazy dog, twice before breakfast."
CHINESE = "今天天气很好，我们一起去公园散步吧。"


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / get_engine().sample_rate


def peak(pcm: bytes) -> int:
    samples = array.array("h", pcm)
    return max(abs(s) for s in samples)


def test_voices_are_the_17_aiml_voices_each_distinct() -> None:
    assert list(VOICES) == AIML_VOICES
    assert all(name == info.name for name, info in VOICES.items())
    settings = {(v.espeak_variant, v.pitch) for v in VOICES.values()}
    assert len(settings) == len(VOICES)
    assert all(0 <= v.pitch <= 100 and 80 <= v.rate <= 450 for v in VOICES.values())


def test_engine_is_a_singleton_at_22050_hz() -> None:
    assert get_engine() is get_engine()
    assert get_engine().sample_rate == 22050


def test_english_speech_has_plausible_length_and_is_not_silent() -> None:
    pcm = get_engine().synthesize(ENGLISH, "Cherry")
    assert len(pcm) % 2 == 0
    # 12 words at ~175 words per minute: about 4 s.
    assert 2.0 < seconds(pcm) < 9.0
    assert peak(pcm) > 1000


def test_chinese_is_spoken_as_mandarin() -> None:
    pcm = get_engine().synthesize(CHINESE, "Dylan")
    # 17 syllables: a few seconds. Read as English it would spell out code points.
    assert 1.5 < seconds(pcm) < 10.0
    assert peak(pcm) > 1000


def crossings_per_second(pcm: bytes) -> float:
    """Zero crossings per second: a crude but stable proxy for how high a voice sounds."""
    s = array.array("h", pcm)
    crossings = sum(1 for a, b in itertools.pairwise(s) if (a < 0) != (b < 0))
    return crossings / seconds(pcm)


@pytest.mark.parametrize(("high", "low"), [("Cherry", "Ethan"), ("Jada", "Peter")])
def test_voices_sound_different(high: str, low: str) -> None:
    engine = get_engine()
    assert crossings_per_second(engine.synthesize(ENGLISH, high)) > 1.1 * crossings_per_second(
        engine.synthesize(ENGLISH, low)
    )


def test_empty_text_gives_no_audio() -> None:
    assert get_engine().synthesize("", "Cherry") == b""
    assert get_engine().synthesize("  \n", "Cherry") == b""


def test_unknown_voice_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown voice 'Bob'"):
        get_engine().synthesize("hello", "Bob")


def test_threads_synthesizing_at_once_all_get_their_own_audio() -> None:
    engine = get_engine()
    # Lengths far apart, so audio mixed between threads would show. eSpeak NG adds a
    # little random flutter, so the same input is close to, not exactly, the same.
    jobs = [("Yes.", "Cherry"), (ENGLISH * 3, "Eric"), (CHINESE, "Marcus"), ("No.", "Jada")] * 2
    expected = [seconds(engine.synthesize(text, voice)) for text, voice in jobs]
    results: list[bytes] = [b""] * len(jobs)
    start = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        start.wait()
        text, voice = jobs[i]
        results[i] = engine.synthesize(text, voice)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pcm, want in zip(results, expected, strict=True):
        assert seconds(pcm) == pytest.approx(want, rel=0.05)
        assert peak(pcm) > 1000


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hello there", "en"),
        ("今天天气很好", "zh"),
        ("我喜欢用iPhone拍照", "zh"),
        ("東京へ行きます", "ja"),
        ("안녕하세요", "ko"),
        ("Привет, мир", "ru"),
        ("12345 !?", "en"),
        ("", "en"),
    ],
)
def test_a_chunk_s_language_by_script(text: str, lang: str) -> None:
    assert script_language(text) == lang


def test_chinese_is_read_by_espeak_s_mandarin_voice(monkeypatch: pytest.MonkeyPatch) -> None:
    # narrator says "zh" everywhere; eSpeak NG calls its Mandarin voice "cmn".
    from narrator.synth.espeakng import Engine

    chosen: list[str] = []
    real = Engine._select_voice

    def spy(self: Engine, lang: str, info: object) -> None:
        chosen.append(lang)
        real(self, lang, info)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "_select_voice", spy)
    get_engine().synthesize("今天天气很好", "Cherry")
    get_engine().synthesize("Hello there", "Cherry")
    assert chosen == ["cmn", "en"]
