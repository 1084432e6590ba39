"""narrator as a library: the examples of docs/library.md, and a library that never prints."""

from __future__ import annotations

from pathlib import Path

import pytest

import narrator
from narrator.errors import AuthError, ConfigError
from narrator.tools.emulator import RunningEmulator
from narrator.util.wav import read_wav_info

from .conftest import TEST_KEY


def test_sync_wrapper_with_the_offline_voice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "cache")
    report = narrator.narrate_sync(
        "Hello there. This is narrator, reading offline.", tmp_path / "hello.wav", settings
    )
    assert report.status == "done" and report.chunks == 1
    assert read_wav_info(tmp_path / "hello.wav").seconds == pytest.approx(
        report.audio_seconds, abs=0.01
    )
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


async def test_async_entry_point_through_the_api(
    emulator: RunningEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "article.txt"
    source.write_text("# Title\n\nFirst paragraph. It is short.\n\nSecond paragraph.")
    events: list[narrator.ProgressEvent] = []
    settings = narrator.Settings(
        api_key=TEST_KEY, base_url=emulator.url, cache_dir=tmp_path / "cache", rpm=6000
    )
    report = await narrator.narrate(source, tmp_path / "a.wav", settings, on_progress=events.append)
    assert report.status == "done" and report.title == "Title"
    assert events[0].kind == "planned"
    assert sum(e.chunks for e in events if e.kind == "chunk") == report.chunks
    assert events[-1].kind == "document" and events[-1].report == report
    assert capsys.readouterr().out == ""


async def test_a_rejected_key_raises(emulator: RunningEmulator, tmp_path: Path) -> None:
    settings = narrator.Settings(
        api_key="wrong", base_url=emulator.url, cache_dir=tmp_path / "cache", rpm=6000
    )
    with pytest.raises(AuthError, match="rejected"):
        await narrator.narrate("Some text.", tmp_path / "a.wav", settings)


async def test_a_failed_document_raises_with_its_report(tmp_path: Path) -> None:
    from narrator.errors import BadRequest

    from .test_pool import FakeProvider

    # The service refuses the one chunk's text: the document fails, nothing is written.
    class Refusing(FakeProvider):
        max_chars = 600

        def billing_chars(self, text: str) -> int:
            return len(text)

    provider = Refusing(failures={"Some text.": [BadRequest("text must not be odd")]})
    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "c")
    with pytest.raises(narrator.NarrationFailed) as info:
        await narrator.narrate("Some text.", tmp_path / "a.wav", settings, provider=provider)
    assert info.value.report.status == "failed"
    assert not (tmp_path / "a.wav").exists()


def test_an_unknown_voice_is_refused_before_anything_is_sent() -> None:
    # The library speaks of its settings; the CLI names its flag instead (test_registry).
    with pytest.raises(narrator.NarratorError, match=r"^voice Nobody: .*Cherry, Ethan") as info:
        narrator.Settings(api_key=TEST_KEY, voice="Nobody")
    assert isinstance(info.value, ConfigError) and info.value.setting == "voice"
    assert narrator.Settings(api_key=TEST_KEY, voice="cHeRrY").voice == "Cherry"


def test_settings_are_checked_once_with_a_hint() -> None:
    with pytest.raises(narrator.NarratorError, match="AIMLAPI_KEY"):
        narrator.Settings()
    with pytest.raises(narrator.NarratorError, match="at least 1"):
        narrator.Settings(provider="espeak", concurrency=-1)
    assert "secret" not in repr(narrator.Settings(api_key="secret"))
