"""The AIML API emulator, as a real HTTP peer on a loopback port."""

from __future__ import annotations

import array
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from narrator.errors import ConfigError
from narrator.synth.quality import measure_pcm
from narrator.tools.emulator import (
    MODEL,
    STATS,
    EmulatorConfig,
    RunningEmulator,
    billed_key,
    create_app,
    start_emulator,
)
from narrator.tools.emulator.audio import speech_wav
from narrator.util.wav import WavInfo, parse_wav

KEY = {"Authorization": "Bearer test-key"}
ERROR_KEYS = {"message", "path", "requestId", "statusCode", "timestamp"}


class FakeClock:
    """The emulator's clock, moved by hand so no test sleeps for expiry or refills."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Start = Callable[..., Awaitable[RunningEmulator]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start emulators (tone engine unless told) and stop them after the test."""
    running: list[RunningEmulator] = []

    async def make(*, clock: FakeClock | None = None, **knobs: Any) -> RunningEmulator:
        knobs.setdefault("engine", "tone")
        emulator = await start_emulator(EmulatorConfig(**knobs), clock=clock)
        running.append(emulator)
        return emulator

    yield make
    for emulator in running:
        await emulator.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def body(text: str = "Hello there.", voice: str = "Cherry", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "text": text, "voice": voice, **extra}


async def post(
    http: aiohttp.ClientSession,
    emulator: RunningEmulator,
    payload: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any] | bytes, aiohttp.ClientResponse]:
    """POST /v1/tts; the decoded JSON (or raw bytes for audio) and the response."""
    async with http.post(
        emulator.url + "/v1/tts",
        json=body() if payload is None else payload,
        headers=KEY if headers is None else headers,
    ) as resp:
        raw = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, json.loads(raw), resp
        return resp.status, raw, resp


def audio_url(data: dict[str, Any] | bytes) -> str:
    """The link in an object- or string-shaped success body."""
    assert isinstance(data, dict)
    audio = data["audio"]
    return audio["url"] if isinstance(audio, dict) else audio


async def download(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    # encoded=True: the signature must reach the server byte for byte.
    async with http.get(URL(url, encoded=True)) as resp:
        return resp.status, await resp.read()


def wav_info(wav: bytes) -> WavInfo:
    info = parse_wav(wav, len(wav))
    assert (info.rate, info.channels, info.width) == (24000, 1, 2)
    return info


def assert_api_error(status: int, data: dict[str, Any] | bytes, expected: int) -> None:
    assert status == expected
    assert isinstance(data, dict)
    assert set(data) == ERROR_KEYS
    assert data["statusCode"] == expected
    assert data["path"] == "/v1/tts"
    assert data["message"]


# Authentication


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, {"Authorization": "x"}],
)
async def test_missing_key_is_401(start: Start, http: aiohttp.ClientSession, headers: dict) -> None:
    emulator = await start()
    status, data, _ = await post(http, emulator, headers=headers)
    assert_api_error(status, data, 401)


async def test_wrong_key_is_401_and_right_key_passes(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start(api_key="secret")
    status, data, _ = await post(http, emulator, headers={"Authorization": "Bearer nope"})
    assert_api_error(status, data, 401)
    status, _, _ = await post(http, emulator, headers={"Authorization": "Bearer secret"})
    assert status == 201


# Validation


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(body(model="openai/tts-1"), id="bad model"),
        pytest.param({"text": "hi", "voice": "Cherry"}, id="missing model"),
        pytest.param({"model": MODEL, "voice": "Cherry"}, id="missing text"),
        pytest.param(body(text=""), id="empty text"),
        pytest.param(body(text=42), id="text not a string"),
        pytest.param(body(text="a" * 601), id="601 ASCII characters"),
        pytest.param(body(text="字" * 301), id="301 Han characters are 602"),
        pytest.param(body(voice="Bob"), id="unknown voice"),
        pytest.param(body(voice="cherry"), id="voice is case-sensitive"),
        pytest.param({"model": MODEL, "text": "hi"}, id="missing voice"),
        pytest.param([body()], id="array body"),
    ],
)
async def test_invalid_body_is_400(start: Start, http: aiohttp.ClientSession, payload: Any) -> None:
    emulator = await start()
    status, data, _ = await post(http, emulator, payload)
    assert_api_error(status, data, 400)
    assert emulator.stats.billed_characters == 0


async def test_non_json_body_is_400(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start()
    async with http.post(emulator.url + "/v1/tts", data=b"text=hi", headers=KEY) as resp:
        assert_api_error(resp.status, await resp.json(), 400)


async def test_400_message_explains_han_counting(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start()
    _, data, _ = await post(http, emulator, body(text="字" * 400))
    assert isinstance(data, dict)
    assert "800" in data["message"]


@pytest.mark.parametrize(
    ("text", "billing"), [("a" * 600, 600), ("字" * 300, 600), ("字a" * 200, 600), ("x", 1)]
)
async def test_limits_are_inclusive_and_han_bills_double(
    start: Start, http: aiohttp.ClientSession, text: str, billing: int
) -> None:
    emulator = await start()
    status, data, _ = await post(http, emulator, body(text=text))
    assert status == 201
    assert isinstance(data, dict)
    assert data["usage"] == {"characters": billing}
    assert emulator.stats.billed_characters == billing


async def test_unknown_fields_are_ignored(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start()
    status, _, _ = await post(http, emulator, body(language="English", speed=2, stream=False))
    assert status == 201


# Shapes and audio


async def test_object_shape_links_to_a_24khz_wav(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(shape="object")
    status, data, resp = await post(http, emulator, body(text="Fifteen chars.."))
    assert status == 201
    assert resp.headers["x-inference-id"]
    url = audio_url(data)
    assert url.startswith(emulator.url + "/audio/")
    assert ".wav?Expires=" in url and "&OSSAccessKeyId=" in url and "&Signature=" in url
    status, wav = await download(http, url)
    assert status == 200
    # The tone engine: one second per 15 characters.
    assert wav_info(wav).seconds == pytest.approx(1.0)


async def test_string_shape_reports_credits(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(shape="string")
    status, data, _ = await post(http, emulator, body(text="你好, world"))
    assert status == 201
    assert isinstance(data, dict)
    assert isinstance(data["audio"], str)
    assert data["meta"]["usage"]["credits_used"] == 11
    assert data["meta"]["usage"]["usd_spent"] > 0
    status, wav = await download(http, audio_url(data))
    assert status == 200
    wav_info(wav)


async def test_binary_shape_is_the_wav_itself(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(shape="binary")
    status, data, resp = await post(http, emulator)
    assert status == 201
    assert resp.content_type == "audio/wav"
    assert isinstance(data, bytes)
    wav_info(data)
    assert emulator.stats.billed_characters == len("Hello there.")


@pytest.mark.parametrize("kind", ["silent", "cut", "runaway"])
async def test_bad_audio_is_billed_like_good_audio_and_counted(
    start: Start, http: aiohttp.ClientSession, kind: str
) -> None:
    emulator = await start(shape="binary", bad_audio_rate=1.0, bad_audio_kinds=(kind,))
    status, data, _ = await post(http, emulator)
    assert status == 201 and isinstance(data, bytes)
    good = await start(shape="binary")
    _, clean, _ = await post(http, good)
    assert isinstance(clean, bytes)
    bad, fine = wav_info(data), wav_info(clean)  # a valid header, 24 kHz mono 16-bit
    samples = data[bad.data_offset : bad.data_offset + bad.data_size]
    if kind == "silent":
        assert bad.frames == fine.frames
        assert measure_pcm(samples, rate=24000).peak_dbfs < -60  # a faint hiss
    elif kind == "cut":
        assert bad.frames == int(fine.frames * 0.4)
    else:
        assert bad.frames == fine.frames + 11 * 24000
    assert emulator.stats.billed_characters == len("Hello there.")
    assert emulator.stats.bad_audio == {kind: 1}
    assert list(emulator.stats.bad_billed.values()) == [1]


async def test_mixed_rotates_through_every_shape_and_status(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start(shape="mixed")
    seen = set()
    for _ in range(6):
        status, data, _ = await post(http, emulator)
        if isinstance(data, bytes):
            wav_info(data)
            shape = "binary"
        else:
            shape = "object" if isinstance(data["audio"], dict) else "string"
            status_get, wav = await download(http, audio_url(data))
            assert status_get == 200
            wav_info(wav)
        seen.add((shape, status))
    assert seen == {(s, c) for s in ("object", "string", "binary") for c in (200, 201)}


async def test_voices_give_different_tones(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(shape="binary")
    _, cherry, _ = await post(http, emulator, body(voice="Cherry"))
    _, eric, _ = await post(http, emulator, body(voice="Eric"))
    assert isinstance(cherry, bytes) and isinstance(eric, bytes)
    assert len(cherry) == len(eric)
    assert cherry != eric


async def test_espeak_engine_speaks_english_and_chinese(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start(engine="espeak", shape="binary")
    for text in ("The emulator speaks with eSpeak.", "模拟器用中文说话。"):
        status, wav, _ = await post(http, emulator, body(text=text, voice="Kiki"))
        assert status == 201
        assert isinstance(wav, bytes)
        info = wav_info(wav)
        assert 0.8 < info.seconds < 8
        samples = array.array("h", wav[info.data_offset : info.data_offset + info.data_size])
        assert max(map(abs, samples)) > 1000
        # eSpeak adds random flutter, so only the cache can make a repeat identical.
        _, again, _ = await post(http, emulator, body(text=text, voice="Kiki"))
        assert again == wav


async def test_speech_engine_answers_speech_like_clips_as_long_as_the_text(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start(engine="speech", shape="binary")
    text = "A sentence of sixty characters, read at fifteen a second...."
    status, wav, _ = await post(http, emulator, body(text=text, voice="Ethan"))
    assert status == 201 and isinstance(wav, bytes)
    info = wav_info(wav)
    assert info.rate == 24000
    assert info.seconds == pytest.approx(len(text) / 15, abs=0.01)
    samples = array.array("h", wav[info.data_offset : info.data_offset + info.data_size])
    # Speech, not a tone: loud syllables and near-silent pauses within four seconds.
    window = 480  # 20 ms
    levels = [
        max(map(abs, samples[i : i + window])) for i in range(0, len(samples) - window, window)
    ]
    assert max(levels) > 5000
    assert min(levels) < max(levels) / 20
    assert abs(samples[-1]) < 100  # faded out: no click at the end
    # Another text gets other audio of its own length; the same text the same audio.
    _, other, _ = await post(http, emulator, body(text=text[:-1] + "!", voice="Ethan"))
    assert isinstance(other, bytes) and len(other) == len(wav) and other != wav
    assert speech_wav("Ethan", text) == wav


# Limits


async def test_rpm_throttles_a_burst_and_refills_over_time(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    emulator = await start(rpm=120, clock=clock)  # 2 per second, at most 2 at once
    statuses = [(await post(http, emulator))[0] for _ in range(5)]
    assert statuses == [201, 201, 429, 429, 429]
    clock.advance(0.5)  # one token back
    assert [(await post(http, emulator))[0] for _ in range(2)] == [201, 429]
    status, data, resp = await post(http, emulator)
    assert_api_error(status, data, 429)
    assert "Retry-After" not in resp.headers


async def test_rpm_below_60_still_allows_one_request(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    emulator = await start(rpm=6, clock=clock)  # one every 10 s
    assert (await post(http, emulator))[0] == 201
    clock.advance(9)
    assert (await post(http, emulator))[0] == 429
    clock.advance(1)
    assert (await post(http, emulator))[0] == 201


async def test_retry_after_is_sent_with_429(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(rpm=60, retry_after=2.5, clock=FakeClock())
    await post(http, emulator)
    status, _, resp = await post(http, emulator)
    assert status == 429
    assert resp.headers["Retry-After"] == "2.5"


async def test_concurrency_over_the_limit_is_429(start: Start, http: aiohttp.ClientSession) -> None:
    # The latency holds the first two in flight while the others arrive.
    emulator = await start(max_concurrency=2, latency=0.5)
    results = await asyncio.gather(*(post(http, emulator) for _ in range(5)))
    assert sorted(status for status, _, _ in results) == [201, 201, 429, 429, 429]
    assert emulator.stats.max_in_flight == 2
    assert emulator.stats.in_flight == 0


async def test_credits_run_out_with_403(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(credits=20)
    assert (await post(http, emulator, body(text="a" * 15)))[0] == 201
    # 15 of 20 spent: still allowed, and the account goes over.
    assert (await post(http, emulator, body(text="b" * 15)))[0] == 201
    status, data, _ = await post(http, emulator, body(text="c"))
    assert_api_error(status, data, 403)
    assert emulator.stats.billed_characters == 30


# Faults


async def test_fail_rate_gives_5xx(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(fail_rate=1.0, seed=1)
    for _ in range(8):
        status, data, _ = await post(http, emulator)
        assert status in (500, 502, 503, 504)
        assert_api_error(status, data, status)
    assert emulator.stats.billed_characters == 0


async def test_fail_rate_is_reproducible_with_a_seed(
    start: Start, http: aiohttp.ClientSession
) -> None:
    runs = []
    for _ in range(2):
        emulator = await start(fail_rate=0.5, seed=7)
        runs.append([(await post(http, emulator))[0] for _ in range(12)])
    assert runs[0] == runs[1]
    assert {201} < set(runs[0])


async def test_drop_rate_closes_the_connection(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start(drop_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, emulator)
    assert emulator.stats.dropped == 1
    assert emulator.stats.statuses == {}
    assert emulator.stats.billed_characters == 0
    assert emulator.stats.in_flight == 0


async def test_truncate_rate_cuts_downloads_short(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start(truncate_rate=1.0)
    _, data, _ = await post(http, emulator)
    async with http.get(URL(audio_url(data), encoded=True)) as resp:
        assert resp.status == 200
        promised = resp.content_length
        assert promised is not None and promised > 1000
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert emulator.stats.truncated == 1


# Links


async def test_links_expire_with_403(start: Start, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    emulator = await start(url_ttl=60, clock=clock)
    _, data, _ = await post(http, emulator)
    url = audio_url(data)
    clock.advance(59)
    assert (await download(http, url))[0] == 200
    clock.advance(2)
    status, xml = await download(http, url)
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in xml and b"expired" in xml


async def test_expired_audio_is_freed_and_its_link_still_says_403(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    emulator = await start(url_ttl=60, clock=clock)
    _, data, _ = await post(http, emulator)
    old_url = audio_url(data)
    clock.advance(120)
    _, data, _ = await post(http, emulator)  # purges the old clip
    assert (await download(http, old_url))[0] == 403
    assert (await download(http, audio_url(data)))[0] == 200


async def test_tampered_link_is_403_and_unknown_audio_404(
    start: Start, http: aiohttp.ClientSession
) -> None:
    emulator = await start()
    _, data, _ = await post(http, emulator)
    url = audio_url(data)
    status, xml = await download(http, url[:-4] + "0000")
    assert status == 403
    assert b"SignatureDoesNotMatch" in xml
    assert (await download(http, emulator.url + "/audio/" + "0" * 32 + ".wav"))[0] == 404
    assert (await download(http, url.replace(".wav?", ".mp3?")))[0] == 404


# Headers and counters


async def test_client_request_id_is_echoed(start: Start, http: aiohttp.ClientSession) -> None:
    emulator = await start()
    _, _, resp = await post(http, emulator, headers={**KEY, "X-Client-Request-Id": "run-1:c.7"})
    assert resp.headers["X-Client-Request-Id"] == "run-1:c.7"
    # Also on errors, which is where it matters most for logs.
    _, _, resp = await post(http, emulator, body(voice="Bob"), headers={"X-Client-Request-Id": "b"})
    assert resp.status == 401
    assert resp.headers["X-Client-Request-Id"] == "b"
    _, _, resp = await post(http, emulator, headers={**KEY, "X-Client-Request-Id": "no spaces"})
    assert "X-Client-Request-Id" not in resp.headers
    assert emulator.stats.request_ids == ["run-1:c.7", "b", "no spaces"]


async def test_stats_count_requests_statuses_billing_and_downloads(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    emulator = await start(clock=clock)
    _, data, _ = await post(http, emulator, body(text="once"))
    clock.advance(1)
    await post(http, emulator, body(text="once"))
    await post(http, emulator, body(text="中文", voice="Rocky"))
    await post(http, emulator, headers={})
    await download(http, audio_url(data))
    stats = emulator.stats
    assert stats.requests == 4
    assert stats.statuses == {201: 3, 401: 1}
    assert stats.starts == [1000.0, 1001.0, 1001.0, 1001.0]
    assert stats.billed_characters == 4 + 4 + 4
    assert stats.billed == {billed_key("Cherry", "once"): 2, billed_key("Rocky", "中文"): 1}
    assert stats.downloads == 1
    assert (stats.in_flight, stats.max_in_flight) == (0, 1)

    async with http.get(emulator.url + "/_emulator/stats") as resp:
        assert resp.status == 401  # the counters need the key, like the API
    async with http.get(emulator.url + "/_emulator/stats", headers=KEY) as resp:
        served = await resp.json()
    assert served["requests"] == 4
    assert served["statuses"] == {"201": 3, "401": 1}
    assert served["billed"] == {k: v for k, v in stats.billed.items()}


async def test_create_app_exposes_stats_and_running_emulator_is_a_context_manager(
    http: aiohttp.ClientSession,
) -> None:
    config = EmulatorConfig(engine="tone")
    assert isinstance(create_app(config)[STATS].requests, int)
    async with RunningEmulator(config) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert (await post(http, emulator))[0] == 201
        assert emulator.config is config
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, emulator)


@pytest.mark.parametrize(
    "knobs",
    [
        {"shape": "xml"},
        {"engine": "festival"},
        {"fail_rate": 1.5},
        {"drop_rate": -0.1},
        {"rpm": 0},
        {"max_concurrency": 0},
        {"url_ttl": 0},
        {"api_key": ""},
        {"latency": -1},
        {"bad_audio_rate": 2},
        {"bad_audio_kinds": ("silent", "garbled")},
        {"bad_audio_kinds": ()},
    ],
)
def test_bad_config_is_refused_with_a_hint(knobs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(knobs))):
        EmulatorConfig(**knobs)


def test_serve_runs_in_another_process_until_interrupted() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from narrator.tools.emulator import EmulatorConfig, serve\n"
        f"serve(EmulatorConfig(engine='tone'), host='127.0.0.1', port={port})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stats_request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_emulator/stats", headers={"Authorization": "Bearer any"}
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(stats_request) as resp:
                    stats = json.load(resp)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert stats["requests"] == 0
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert out == b""
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


async def test_per_request_records_are_bounded(
    start: Start, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("narrator.tools.emulator.config.RECORDED", 10)
    emulator = await start()
    for n in range(25):
        headers = {**KEY, "X-Client-Request-Id": f"id-{n}" + "x" * 1000}
        await post(http, emulator, body(text=f"Text {n}."), headers=headers)
    stats = emulator.stats
    assert stats.requests == 25
    assert len(stats.starts) <= 10 and len(stats.request_ids) <= 10 and len(stats.billed) <= 10
    assert stats.request_ids[-1].startswith("id-24") and len(stats.request_ids[-1]) == 128
    assert billed_key("Cherry", "Text 24.") in stats.billed


def test_latency_per_char_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="latency_per_char"):
        EmulatorConfig(latency_per_char=-0.001)


async def test_stats_keep_when_the_last_audio_was_answered_and_downloaded(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    emulator = await start(clock=clock)
    assert (emulator.stats.last_success, emulator.stats.last_download) == (None, None)
    _, data, _ = await post(http, emulator)
    clock.advance(2)
    await post(http, emulator, headers={})  # a refusal is no answer
    assert (emulator.stats.last_success, emulator.stats.last_download) == (1000.0, None)
    clock.advance(3)
    status, _ = await download(http, audio_url(data))
    await download(http, emulator.url + "/audio/unknown.wav")  # a refused download neither
    assert status == 200
    assert (emulator.stats.last_success, emulator.stats.last_download) == (1000.0, 1005.0)
