"""The AIML API client's request/response mapping, against aioresponses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

from narrator.errors import (
    AudioTooLarge,
    AuthError,
    BadDownload,
    BadRequest,
    EndpointNotFound,
    LinkExpired,
    LinkRefused,
    OutOfCredits,
    RateLimited,
    TransientError,
)
from narrator.synth.providers.aimlapi import AimlApiProvider
from narrator.synth.providers.http import parse_retry_after
from narrator.util.wav import read_wav_info, tone_pcm, wav_bytes

BASE = "https://api.example.test"
ENDPOINT = f"{BASE}/v1/tts"
KEY = "sk-secret-key-for-tests"
AUDIO_URL = "http://oss.example.test/a/b.wav?Expires=1761212494&Signature=abc%3D"
WAV = wav_bytes(tone_pcm(0.05, 24000), 24000)


def error_body(status: int, message: str | list[str] = "nope") -> dict[str, object]:
    return {
        "message": message,
        "path": "/v1/tts",
        "requestId": "r-1",
        "statusCode": status,
        "timestamp": "2026-11-24T00:00:00Z",
    }


@pytest.fixture
async def client() -> AimlApiProvider:
    provider = AimlApiProvider(api_key=KEY, base_url=BASE + "/", timeout=5)
    yield provider  # type: ignore[misc]
    await provider.aclose()


@pytest.fixture
def mocked() -> aioresponses:
    with aioresponses() as m:
        yield m


async def test_sends_the_documented_request(client: AimlApiProvider, mocked: aioresponses) -> None:
    mocked.post(
        ENDPOINT, status=201, payload={"audio": {"url": AUDIO_URL}, "usage": {"characters": 5}}
    )
    await client.synthesize("Hello", voice="Ethan", request_id="narrator-abc-0")
    (((_, url), calls),) = mocked.requests.items()
    assert str(url) == ENDPOINT
    (call,) = calls
    assert call.kwargs["json"] == {
        "model": "alibaba/qwen3-tts-flash",
        "text": "Hello",
        "voice": "Ethan",
    }
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["X-Client-Request-Id"] == "narrator-abc-0"
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", headers["X-Client-Request-Id"])


@pytest.mark.parametrize("status", [200, 201])
async def test_object_shape(client: AimlApiProvider, mocked: aioresponses, status: int) -> None:
    mocked.post(
        ENDPOINT, status=status, payload={"audio": {"url": AUDIO_URL}, "usage": {"characters": 5}}
    )
    audio = await client.synthesize("Hi", voice="Cherry", request_id="r")
    assert audio.url == AUDIO_URL and audio.data is None


async def test_string_shape(client: AimlApiProvider, mocked: aioresponses) -> None:
    mocked.post(
        ENDPOINT,
        status=201,
        payload={"audio": AUDIO_URL, "meta": {"usage": {"credits_used": 3, "usd_spent": 0.01}}},
    )
    audio = await client.synthesize("Hi", voice="Cherry", request_id="r")
    assert audio.url == AUDIO_URL


@pytest.mark.parametrize(
    "content_type", ["audio/wav", "application/octet-stream", "application/json"]
)
async def test_binary_shape_is_told_by_bytes_not_type(
    client: AimlApiProvider, mocked: aioresponses, content_type: str
) -> None:
    mocked.post(ENDPOINT, status=200, body=WAV, content_type=content_type)
    audio = await client.synthesize("Hi", voice="Cherry", request_id="r")
    assert audio.data == WAV and audio.url is None


@pytest.mark.parametrize("body", [b"<html>ok</html>", json.dumps({"usage": {}}).encode()])
async def test_success_without_audio_is_transient(
    client: AimlApiProvider, mocked: aioresponses, body: bytes
) -> None:
    mocked.post(ENDPOINT, status=201, body=body)
    with pytest.raises(TransientError):
        await client.synthesize("Hi", voice="Cherry", request_id="r")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, AuthError),
        (403, OutOfCredits),
        (404, EndpointNotFound),
        (429, RateLimited),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
async def test_errors_map_to_the_hierarchy(
    client: AimlApiProvider, mocked: aioresponses, status: int, error: type[Exception]
) -> None:
    mocked.post(ENDPOINT, status=status, payload=error_body(status, "the service says no"))
    with pytest.raises(error) as info:
        await client.synthesize("Hi", voice="Cherry", request_id="r")
    assert KEY not in str(info.value)
    if status in (400, 429, 500):
        assert "the service says no" in str(info.value)


async def test_validation_messages_as_a_list(client: AimlApiProvider, mocked: aioresponses) -> None:
    mocked.post(ENDPOINT, status=400, payload=error_body(400, ["text too long", "voice invalid"]))
    with pytest.raises(BadRequest, match="text too long; voice invalid"):
        await client.synthesize("Hi", voice="Cherry", request_id="r")


async def test_retry_after_is_read(client: AimlApiProvider, mocked: aioresponses) -> None:
    mocked.post(ENDPOINT, status=429, payload=error_body(429), headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as info:
        await client.synthesize("Hi", voice="Cherry", request_id="r")
    assert info.value.retry_after == 7.0


def test_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    now = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT
    assert parse_retry_after({"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": "Tue, 14 Nov 2023 22:00:00 GMT"}, now=now) == 0.0


@pytest.mark.parametrize(
    "exc",
    [aiohttp.ServerDisconnectedError(), aiohttp.ClientConnectionError("reset"), TimeoutError()],
)
async def test_network_failures_are_transient(
    client: AimlApiProvider, mocked: aioresponses, exc: Exception
) -> None:
    mocked.post(ENDPOINT, exception=exc)
    with pytest.raises(TransientError):
        await client.synthesize("Hi", voice="Cherry", request_id="r")


async def test_download_streams_a_wav_without_the_key(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path
) -> None:
    mocked.get(AUDIO_URL, status=200, body=WAV, content_type="audio/wav")
    dest = tmp_path / "seg.wav"
    await client.download(AUDIO_URL, dest, max_bytes=10**6)
    assert dest.read_bytes() == WAV
    assert read_wav_info(dest).rate == 24000
    (((_, _), calls),) = mocked.requests.items()
    assert "Authorization" not in (calls[0].kwargs.get("headers") or {})


async def test_a_download_up_to_keep_comes_back_in_memory_and_writes_nothing(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path
) -> None:
    mocked.get(AUDIO_URL, status=200, body=WAV, content_type="audio/wav")
    dest = tmp_path / "seg.wav"
    assert await client.download(AUDIO_URL, dest, max_bytes=10**6, keep=len(WAV)) == WAV
    assert not dest.exists()


async def test_a_download_longer_than_keep_is_written_whole_to_the_file(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path
) -> None:
    long = wav_bytes(tone_pcm(3.0, 24000), 24000)  # 144 kB: three blocks, one kept at first
    mocked.get(AUDIO_URL, status=200, body=long, content_type="audio/wav")
    dest = tmp_path / "seg.wav"
    assert await client.download(AUDIO_URL, dest, max_bytes=10**6, keep=100_000) is None
    assert dest.read_bytes() == long


@pytest.mark.parametrize("status", [403, 404])
async def test_dead_link_is_expired(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path, status: int
) -> None:
    mocked.get(AUDIO_URL, status=status, body=b"<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(LinkExpired):
        await client.download(AUDIO_URL, tmp_path / "x.wav", max_bytes=10**6)


@pytest.mark.parametrize("keep", [0, 10**6])
@pytest.mark.parametrize("body", [b"", b"not audio at all", WAV[: len(WAV) // 2]])
async def test_broken_download_is_fetched_again(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path, body: bytes, keep: int
) -> None:
    mocked.get(AUDIO_URL, status=200, body=body)
    with pytest.raises(BadDownload):
        await client.download(AUDIO_URL, tmp_path / "x.wav", max_bytes=10**6, keep=keep)


async def test_download_size_cap(
    client: AimlApiProvider, mocked: aioresponses, tmp_path: Path
) -> None:
    mocked.get(AUDIO_URL, status=200, body=WAV)
    with pytest.raises(AudioTooLarge, match="cap"):
        await client.download(AUDIO_URL, tmp_path / "x.wav", max_bytes=100)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y.wav", "javascript:alert(1)"])
async def test_only_http_links_are_downloaded(
    client: AimlApiProvider, tmp_path: Path, url: str
) -> None:
    with pytest.raises(LinkRefused, match="non-HTTP"):
        await client.download(url, tmp_path / "x.wav", max_bytes=10**6)


def test_key_stays_out_of_repr() -> None:
    provider = AimlApiProvider(api_key=KEY)
    assert KEY not in repr(provider)
