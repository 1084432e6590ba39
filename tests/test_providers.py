"""One contract, every networked provider: each runs against the emulator playing its API.

The same tests go through ``aimlapi``, ``dashscope`` and ``openai`` over a real loopback
socket: the request on the wire, each error class, each response form, the limit, and
an end-to-end run of the real ``narrator`` command that must yield the expected book.
"""

from __future__ import annotations

import re
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from narrator.chunks.split import split_document
from narrator.errors import (
    AuthError,
    BadDownload,
    BadRequest,
    ConfigError,
    EndpointNotFound,
    LinkExpired,
    OutOfCredits,
    ProviderError,
    RateLimited,
    StopRun,
    TransientError,
)
from narrator.inputs.documents import load_document, parse_text
from narrator.settings import Settings
from narrator.synth.providers import Provider, make_provider
from narrator.synth.providers.dashscope import language_type
from narrator.tools.emulator import EmulatorConfig, RunningEmulator
from narrator.tools.emulator.audio import tone_wav as _tone_wav
from narrator.tools.emulator.openai import ENGINE_VOICES
from narrator.util.registry import REGISTRY
from narrator.util.wav import parse_wav

from .conftest import TEST_KEY, run_cli


@dataclass(frozen=True)
class Spec:
    """What differs between providers; everything else is the shared contract."""

    name: str
    path: str
    voice: str
    forms: tuple[str, ...]  # emulator shapes that give each of its response forms
    links: bool  # answers with links to download (else the audio is in the body)
    request: Callable[[str, str], dict[str, Any]]  # the JSON body for (text, voice)


SPECS = [
    Spec(
        "aimlapi",
        "/v1/tts",
        "Ethan",
        ("object", "string", "binary", "mixed"),
        True,
        lambda text, voice: {"model": "alibaba/qwen3-tts-flash", "text": text, "voice": voice},
    ),
    Spec(
        "dashscope",
        "/api/v1/services/aigc/multimodal-generation/generation",
        "Ethan",
        ("object", "binary"),
        True,
        lambda text, voice: {
            "model": "qwen3-tts-flash",
            "input": {"text": text, "voice": voice, "language_type": "English"},
        },
    ),
    Spec(
        "openai",
        "/v1/audio/speech",
        "echo",
        ("binary",),
        False,
        lambda text, voice: {
            "model": "tts-1",
            "input": text,
            "voice": voice,
            "response_format": "wav",
            "speed": 1.0,
        },
    ),
]
BY_NAME = {spec.name: spec for spec in SPECS}
ids = [spec.name for spec in SPECS]


@dataclass
class Wire:
    """The emulator, and every request that reached it."""

    emulator: RunningEmulator
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.emulator.url


@asynccontextmanager
async def serve(
    spec: Spec, clock: Callable[[], float] | None = None, **knobs: Any
) -> AsyncIterator[Wire]:
    """The emulator in ``spec``'s API mode, recording each POST as it arrives."""
    knobs.setdefault("api_key", TEST_KEY)
    emulator = RunningEmulator(EmulatorConfig(api=spec.name, engine="tone", **knobs), clock=clock)
    wire = Wire(emulator)

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.read()  # cached: the handler reads it again
            try:
                payload = await request.json()
            except ValueError:
                payload = body
            wire.requests.append((request.path, dict(request.headers), payload))
        return await handler(request)

    emulator.app.middlewares.append(record)
    await emulator.start()
    try:
        yield wire
    finally:
        await emulator.close()


def provider_for(spec: Spec, url: str, *, key: str | None = TEST_KEY, lang: str = "en") -> Provider:
    return make_provider(Settings(provider=spec.name, api_key=key, base_url=url, lang=lang))


@asynccontextmanager
async def client(spec: Spec, url: str, **kw: Any) -> AsyncIterator[Provider]:
    provider = provider_for(spec, url, **kw)
    try:
        yield provider
    finally:
        await provider.aclose()


async def fetch(provider: Provider, text: str, voice: str, tmp_path: Path) -> bytes:
    """The WAV bytes one synthesis yields, downloaded if it came as a link."""
    audio = await provider.synthesize(text, voice=voice, request_id="narrator-test-0")
    if audio.data is not None:
        return audio.data
    assert audio.url is not None
    dest = tmp_path / "segment.wav"
    await provider.download(audio.url, dest, max_bytes=10**8)
    return dest.read_bytes()


def frames(wav: bytes) -> bytes:
    info = parse_wav(wav, len(wav))
    assert (info.rate, info.channels, info.width) == (24000, 1, 2)
    return wav[info.data_offset : info.data_offset + info.data_size]


def expected_frames(voice: str, text: str) -> bytes:
    """What the emulator's tone engine says for ``text`` in ``voice``."""
    return frames(_tone_wav(ENGINE_VOICES.get(voice, voice), text))


# --- request shape ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=ids)
async def test_sends_the_documented_request(spec: Spec, tmp_path: Path) -> None:
    async with serve(spec) as wire, client(spec, wire.url) as provider:
        await fetch(provider, "Hello there.", spec.voice, tmp_path)
    ((path, headers, body),) = wire.requests
    assert path == spec.path
    assert body == spec.request("Hello there.", spec.voice)
    assert headers["Authorization"] == f"Bearer {TEST_KEY}"
    assert provider.name == spec.name and spec.name in provider.identity


@pytest.mark.parametrize("spec", SPECS, ids=ids)
async def test_the_stated_limit_is_the_servers(spec: Spec, tmp_path: Path) -> None:
    async with serve(spec) as wire, client(spec, wire.url) as provider:
        # Han characters too, so the provider's way of counting them is put to the test.
        han = "字" * (provider.max_chars // 4)
        text = han + "a" * (provider.max_chars - provider.billing_chars(han))
        assert provider.billing_chars(text) == provider.max_chars
        assert frames(await fetch(provider, text, spec.voice, tmp_path)) == expected_frames(
            spec.voice, text
        )
        with pytest.raises(BadRequest):
            await provider.synthesize(text + "a", voice=spec.voice, request_id="r")


# --- each error class -------------------------------------------------------------------

FAULTS: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "bad key": ({}, AuthError),
    "out of credits": ({"credits": 0}, OutOfCredits),
    "server error": ({"fail_rate": 1.0}, TransientError),
    "dropped connection": ({"drop_rate": 1.0}, TransientError),
    "unknown voice": ({}, BadRequest),
    "wrong base URL": ({}, EndpointNotFound),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("spec", SPECS, ids=ids)
async def test_each_error_maps_to_its_class(spec: Spec, fault: str) -> None:
    knobs, error = FAULTS[fault]
    async with serve(spec, **knobs) as wire:
        url = wire.url + "/nowhere" if fault == "wrong base URL" else wire.url
        key = "wrong-key-123" if fault == "bad key" else TEST_KEY
        voice = "Nobody" if fault == "unknown voice" else spec.voice
        async with client(spec, url, key=key) as provider:
            with pytest.raises(error) as info:
                await provider.synthesize("Hello.", voice=voice, request_id="r")
    assert type(info.value) is error  # not merely a subclass
    assert TEST_KEY not in str(info.value) and key not in str(info.value)
    retried = isinstance(info.value, ProviderError) and info.value.retryable
    assert retried == (error is TransientError)
    assert isinstance(info.value, StopRun) == (error in (AuthError, OutOfCredits, EndpointNotFound))


@pytest.mark.parametrize("spec", SPECS, ids=ids)
async def test_throttling_is_retried_after_the_asked_delay(spec: Spec, tmp_path: Path) -> None:
    async with serve(spec, rpm=0.001, retry_after=7) as wire, client(spec, wire.url) as provider:
        await fetch(provider, "First.", spec.voice, tmp_path)  # the bucket's only token
        with pytest.raises(RateLimited) as info:
            await provider.synthesize("Second.", voice=spec.voice, request_id="r")
    assert info.value.retryable and info.value.retry_after == 7.0
    assert wire.emulator.stats.statuses == {200 if spec.name != "aimlapi" else 201: 1, 429: 1}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.links], ids=lambda s: s.name)
async def test_an_old_link_is_expired_and_a_cut_download_broken(spec: Spec, tmp_path: Path) -> None:
    now = [1000.0]
    async with serve(spec, clock=lambda: now[0], url_ttl=60) as wire:
        async with client(spec, wire.url) as provider:
            audio = await provider.synthesize("Hello.", voice=spec.voice, request_id="r")
            assert audio.url is not None
            now[0] += 61
            with pytest.raises(LinkExpired):
                await provider.download(audio.url, tmp_path / "x.wav", max_bytes=10**6)
    async with serve(spec, truncate_rate=1.0) as wire, client(spec, wire.url) as provider:
        audio = await provider.synthesize("Hello.", voice=spec.voice, request_id="r")
        assert audio.url is not None
        with pytest.raises(BadDownload):
            await provider.download(audio.url, tmp_path / "y.wav", max_bytes=10**6)


# --- each response form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "form"),
    [(spec, form) for spec in SPECS for form in spec.forms],
    ids=[f"{spec.name}-{form}" for spec in SPECS for form in spec.forms],
)
async def test_every_response_form_gives_the_spoken_audio(
    spec: Spec, form: str, tmp_path: Path
) -> None:
    texts = [f"Sentence number {i}." for i in range(6 if form == "mixed" else 1)]
    async with serve(spec, shape=form) as wire, client(spec, wire.url) as provider:
        for text in texts:
            wav = await fetch(provider, text, spec.voice, tmp_path)
            assert frames(wav) == expected_frames(spec.voice, text)
    # mixed: object, string, binary, object, string, binary: four links
    assert wire.emulator.stats.downloads == {"binary": 0, "mixed": 4}.get(form, len(texts))


# --- what is particular to one provider -------------------------------------------------


async def test_a_local_openai_server_needs_no_key(tmp_path: Path) -> None:
    spec = BY_NAME["openai"]
    async with serve(spec, api_key=None) as wire, client(spec, wire.url + "/v1", key=None) as p:
        assert frames(await fetch(p, "Hi.", "alloy", tmp_path)) == expected_frames("alloy", "Hi.")
    ((path, headers, _),) = wire.requests
    assert path == "/v1/audio/speech"  # a base URL ending in /v1 is not doubled
    assert "Authorization" not in headers


@pytest.mark.parametrize("name", ["aimlapi", "dashscope"])
def test_qwen_providers_need_a_key(name: str) -> None:
    with pytest.raises(ConfigError, match=REGISTRY[name].key_variable):
        Settings(provider=name)


def test_dashscope_regions_and_defaults() -> None:
    intl = Settings(provider="dashscope", api_key="k")
    cn = Settings(provider="dashscope", api_key="k", region="cn")
    assert intl.base_url == "https://dashscope-intl.aliyuncs.com"
    assert cn.base_url == "https://dashscope.aliyuncs.com"
    assert (intl.model, intl.voice) == ("qwen3-tts-flash", "Cherry")
    openai = Settings(provider="openai")
    assert (openai.model, openai.voice, openai.api_key) == ("tts-1", "alloy", None)
    with pytest.raises(ConfigError, match="region"):
        Settings(provider="dashscope", api_key="k", region="eu")


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("en", "Hello there.", "English"),
        ("en-US", "Hello there.", "English"),
        ("zh", "你好，世界。", "Chinese"),
        ("fr", "Bonjour tout le monde.", "French"),
        ("ja", "こんにちは、世界。", "Japanese"),
        ("en", "你好，世界。", "Auto"),  # the default --lang on a Chinese book
        ("zh", "An English quotation.", "Auto"),
        ("xx", "Hello.", "Auto"),
        ("auto", "Hello.", "Auto"),  # Latin script: the service tells English from French
        ("auto", "你好，世界。", "Chinese"),
        (None, "Привет, мир.", "Russian"),
    ],
)
def test_dashscope_language_type_follows_the_document(
    lang: str | None, text: str, expected: str
) -> None:
    assert language_type(lang, text) == expected


async def test_dashscope_sends_the_documents_language(tmp_path: Path) -> None:
    spec = BY_NAME["dashscope"]
    async with serve(spec) as wire, client(spec, wire.url, lang="zh") as provider:
        await fetch(provider, "你好，世界。", "Dylan", tmp_path)
    ((_, _, body),) = wire.requests
    assert body["input"]["language_type"] == "Chinese"


# --- end to end -------------------------------------------------------------------------

BOOK = (
    """# One

The first chapter is short. It has two sentences, and then it ends.

第二段是中文。汉字在某些服务里算两个字符，在另一些服务里只算一个字符。"""
    + "这句话会一直重复。" * 30
    + """

# Two

"""
    + " ".join(f"Sentence number {i} makes the second chapter long enough." for i in range(12))
)


def wav_frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return w.readframes(w.getnframes())


@pytest.mark.parametrize("spec", SPECS, ids=ids)
async def test_the_command_makes_the_expected_book_through_each_provider(
    spec: Spec, tmp_path: Path
) -> None:
    source = tmp_path / "book.md"
    source.write_text(BOOK, encoding="utf-8")
    out = tmp_path / "book.wav"
    async with serve(spec) as wire:
        result = await run_cli(
            "narrate", str(source), "-o", str(out), "--provider", spec.name,
            "--base-url", wire.url, "--cache-dir", str(tmp_path / "cache"), "--max-chars", "200",
            "--rpm", "6000", "--quiet", "--gap-ms", "300", "--chapter-gap-ms", "1000",
            env={REGISTRY[spec.name].key_variable: TEST_KEY},
        )  # fmt: skip
        assert result.code == 0, result.stderr
        provider = provider_for(spec, wire.url)
    chunks = split_document(load_document(source), max_chars=200, count=provider.billing_chars)
    assert all(provider.billing_chars(c.text) <= 200 for c in chunks)
    default_voice = Settings(provider=spec.name, api_key="k").voice
    # Gaps are the stitcher's business: compare what is spoken between them, in order.
    spoken = [s for s in re.split(rb"(?:\0\0){240,}", wav_frames(out)) if s]  # >= 10 ms
    assert len(spoken) == len(chunks)
    edge = 2 * 480  # 20 ms: the stitcher may trim a clip's silence and fade its edges
    for said, chunk in zip(spoken, chunks, strict=True):
        clip = expected_frames(default_voice, chunk.text)
        assert clip[edge:-edge] in said and abs(len(said) - len(clip)) <= 2 * edge
    sent = [body for path, _, body in wire.requests if path == spec.path]
    assert len(sent) == len({c.text for c in chunks})


async def test_counting_follows_the_provider() -> None:
    """Under OpenAI's plain count a chunk holds twice the Han text it may under qwen's."""
    doc = parse_text("汉" * 300)
    qwen = provider_for(BY_NAME["dashscope"], "http://127.0.0.1:9")
    openai = provider_for(BY_NAME["openai"], "http://127.0.0.1:9")
    assert len(split_document(doc, max_chars=300, count=qwen.billing_chars)) == 2
    assert len(split_document(doc, max_chars=300, count=openai.billing_chars)) == 1


async def test_missing_dashscope_key_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "t.txt"
    source.write_text("Hello.")
    result = await run_cli("narrate", str(source), "--provider", "dashscope")
    assert result.code == 2
    assert "DASHSCOPE_API_KEY" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_voices_lists_each_providers() -> None:
    result = await run_cli("voices", "--provider", "openai")
    assert result.code == 0
    assert result.stdout.split("\n")[1].split()[0] == "alloy"
    everything = await run_cli("voices", "--provider", "all")
    for name in ("[aimlapi]", "[dashscope]", "[openai]", "[espeak]"):
        assert name in everything.stdout
    assert "Cantonese" in everything.stdout


async def test_max_chars_above_the_providers_limit_is_clamped(tmp_path: Path) -> None:
    spec = BY_NAME["dashscope"]
    source = tmp_path / "long.txt"
    source.write_text(" ".join(f"Sentence {i} is here." for i in range(100)))  # ~2,000 chars
    async with serve(spec) as wire:
        result = await run_cli(
            "narrate", str(source), "--provider", "dashscope", "--base-url", wire.url,
            "--cache-dir", str(tmp_path / "c"), "--max-chars", "5000", "--quiet",
            env={"DASHSCOPE_API_KEY": TEST_KEY},
        )  # fmt: skip
    assert result.code == 0, result.stderr
    assert set(wire.emulator.stats.statuses) == {200}
    assert all(len(body["input"]["text"]) <= 600 for _, _, body in wire.requests)
    assert len(wire.requests) >= 4
