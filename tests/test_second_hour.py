"""Issue 27, "the second hour": what a new user still tripped over, each with its test.

The library refuses a bad output name before paying; its errors read as a library's;
the messages name the real cause. Real processes where the behaviour is a process's.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

import narrator
from narrator.errors import ConfigError, Unreachable
from narrator.synth.providers.http import _connect_failure
from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY, run_cli

TEXT = " ".join(f"Sentence {n} of a short text that costs a few requests." for n in range(20))


def _settings(emulator: RunningEmulator, tmp_path: Path, **more: object) -> narrator.Settings:
    return narrator.Settings(
        api_key=TEST_KEY,
        base_url=emulator.url,
        cache_dir=tmp_path / "cache",
        rpm=6000,
        max_chars=80,
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["book.aac", "book", "book.mp3.txt"])
async def test_the_library_refuses_a_bad_output_name_before_any_request(
    emulator: RunningEmulator, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match="unknown audio format"):
        await narrator.narrate(TEXT, tmp_path / name, _settings(emulator, tmp_path))
    assert emulator.stats.requests == 0


async def test_a_bad_output_among_many_sends_nothing(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    works = [
        narrator.Work(narrator.parse_text(TEXT), tmp_path / "good.mp3"),
        narrator.Work(narrator.parse_text(TEXT + " More."), tmp_path / "bad"),
    ]
    with pytest.raises(ConfigError, match="bad: unknown audio format"):
        await narrator.narrate_many(works, _settings(emulator, tmp_path))
    assert emulator.stats.requests == 0


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_host_raises_a_short_library_error(tmp_path: Path) -> None:
    settings = narrator.Settings(
        api_key=TEST_KEY,
        base_url=f"http://127.0.0.1:{_closed_port()}",
        cache_dir=str(tmp_path / "cache"),  # type: ignore[arg-type]  # a str is taken too
        concurrency=4,
        max_chars=60,
    )
    with pytest.raises(Unreachable) as caught:
        narrator.narrate_sync(TEXT, tmp_path / "a.mp3", settings)
    message = str(caught.value)
    assert "Settings.base_url" in message and "--base-url" not in message
    shown = "".join(traceback.format_exception(caught.value))
    # One traceback through narrate_sync, not the workers' frames once per worker.
    assert shown.count("attempts.py") == 0, shown
    assert len(shown.splitlines()) < 25, shown


def test_every_path_setting_takes_a_str(tmp_path: Path) -> None:
    lexicon = tmp_path / "lex.toml"
    lexicon.write_text('[words]\nnarrator = "nair-ay-tor"\n')
    settings = narrator.Settings(
        provider="espeak",
        cache_dir=str(tmp_path / "cache"),  # type: ignore[arg-type]
        lexicon=(str(lexicon),),  # type: ignore[arg-type]
        lexicon_override=[str(lexicon)],  # type: ignore[arg-type]
    )
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.lexicon == (lexicon,) and settings.lexicon_override == (lexicon,)
    report = narrator.narrate_sync("A narrator speaks.", tmp_path / "a.wav", settings)
    assert report.status == "done" and (tmp_path / "cache").is_dir()


async def test_https_against_a_plain_http_server_says_so(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("A short text.")
    result = await run_cli(
        "narrate", str(tmp_path / "a.txt"), "-o", str(tmp_path / "a.mp3"),
        "--base-url", emulator.url.replace("http://", "https://"), "--api-key", TEST_KEY,
        "--cache-dir", str(tmp_path / "c"), "--quiet",
    )  # fmt: skip
    assert result.code == 2, result.stderr
    assert "not permitted" not in result.stderr
    assert "plain HTTP" in result.stderr and "--base-url starts with http://" in result.stderr


def _dns_error(host: str) -> aiohttp.ClientConnectorDNSError:
    key = SimpleNamespace(host=host, port=443, ssl=True)
    return aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))  # type: ignore[arg-type]


def test_no_network_with_the_default_host_is_not_blamed_on_the_base_url() -> None:
    offline = _connect_failure(_dns_error("api.aimlapi.com"))
    assert "online" in offline and "base_url" not in offline
    typo = _connect_failure(_dns_error("api.aimlapi.con"))
    assert "no such host" in typo and "Settings.base_url" in typo
