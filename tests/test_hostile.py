"""A hostile service, hostile settings and hostile files against the real ``narrator``.

Every payload is made here, by the test: a loopback server that answers what each test
tells it to, and files written on the spot. Each run must end quickly with a clear
message (and a report), no traceback, no key sent where it should not go, no segment
stored or stitched that is not speech-shaped, and modest memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from narrator.book.stitch import Piece, stitch_wav
from narrator.errors import AudioError
from narrator.synth.sanity import MAX_GAP_MS, check_format
from narrator.util.wav import read_wav_info, tone_pcm, wav_bytes

from .conftest import CliResult

KEY = "sk-hostile-test-0123456789"
GOOD_WAV = wav_bytes(tone_pcm(0.3, 24000), 24000)
MEMORY_LIMIT_KB = 400 * 1024  # "a few hundred MB", as ru_maxrss counts it on Linux
TEXT = " ".join(f"Sentence number {n} is here to be read." for n in range(12))

# `python -m narrator`, saying at the very end how much memory it peaked at.
MEASURED = """
import resource, runpy, sys
sys.argv[0] = "narrator"
try:
    runpy.run_module("narrator", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stderr.write(f"peak-rss-kb={peak}")
"""

Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Hostile:
    """A loopback server: ``handler(request, n)`` answers the n-th request (from 0)."""

    handler: Handler
    url: str = ""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth
    runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        n = len(self.seen)
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        await request.read()
        try:
            return await self.handler(request, n)
        except ConnectionError:  # the client hung up on a huge answer, as it should
            return web.Response(status=499)

    async def start(self, host: str = "127.0.0.1") -> Hostile:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Hostile]]]:
    servers: list[Hostile] = []

    async def start(handler: Handler, host: str = "127.0.0.1") -> Hostile:
        server = await Hostile(handler).start(host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def narrator(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> CliResult:
    """The real ``narrator`` process, killed if it runs past a minute (a hang is a failure)."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AIMLAPI_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "NARRATOR_BASE_URL")
    }
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEASURED, *args, env=full_env, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"narrator {' '.join(args)} hung")
    assert proc.returncode is not None
    stderr, _, peak = err.decode().rpartition("peak-rss-kb=")
    assert int(peak) < MEMORY_LIMIT_KB, f"narrator peaked at {int(peak) // 1024} MB"
    return CliResult(proc.returncode, out.decode(), stderr)


def run_args(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--base-url", url, "--cache-dir", str(tmp_path / "cache"), "--rpm", "6000",
        "--backoff", "0", "--retries", "2", "--max-chars", "100", "--quiet",
        "--report", str(tmp_path / "report.json"), "-o", str(tmp_path / "book.wav"), *extra,
    ]  # fmt: skip


def source(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    return path


def wav_header(
    *, rate: int, channels: int, bits: int, data: int, byte_rate: int | None = None,
    align: int | None = None,
) -> bytes:  # fmt: skip
    """A RIFF/WAVE PCM header saying whatever the test wants it to say."""
    align = channels * bits // 8 if align is None else align
    byte_rate = rate * align if byte_rate is None else byte_rate
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, channels, rate,
        byte_rate & 0xFFFFFFFF, align & 0xFFFF, bits, b"data", data,
    )  # fmt: skip


def assert_clean_failure(
    result: CliResult, tmp_path: Path, *words: str, code: int = 1
) -> dict[str, object]:
    """Exit 1 (or ``code``), a message, a report, no traceback, no book, nothing bad in
    the cache."""
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "book.wav").exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False and report["errors"]
    for segment in (tmp_path / "cache" / "segments").glob("*/*.wav"):
        check_format(read_wav_info(segment))  # only speech-shaped audio was kept
    return report


# --- where the key goes -----------------------------------------------------------------


async def good(_request: web.Request, _n: int) -> web.StreamResponse:
    return web.Response(body=GOOD_WAV, content_type="audio/wav")


async def test_a_found_settings_file_cannot_send_the_key_elsewhere(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    other = await serve(good)
    (tmp_path / "t.txt").write_text("Hello there.")
    (tmp_path / "narrator.toml").write_text(f'base_url = "{other.url}"\nquiet = true\n')
    env = {"AIMLAPI_KEY": KEY}
    refused = await narrator("narrate", "t.txt", "--cache-dir", "c", env=env, cwd=tmp_path)
    assert refused.code == 2
    assert "narrator.toml: base_url" in refused.stderr and "--trust-settings" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and KEY not in refused.stderr
    assert other.seen == []  # not one request: the key never left
    # The file cannot vouch for itself.
    (tmp_path / "narrator.toml").write_text(f'base_url = "{other.url}"\ntrust_settings = true\n')
    itself = await narrator("narrate", "t.txt", env=env, cwd=tmp_path)
    assert itself.code == 2 and "unknown setting 'trust_settings'" in itself.stderr
    assert other.seen == []
    # Confirmed on the command line, it is used, and narrator says where the key goes, once.
    (tmp_path / "narrator.toml").write_text(f'base_url = "{other.url}"\nquiet = true\n')
    for confirm in (["--trust-settings"], ["--base-url", other.url]):
        ok = await narrator("narrate", "t.txt", "--cache-dir", "c", "--force", *confirm,
                            env=env, cwd=tmp_path)  # fmt: skip
        assert ok.code == 0, ok.stderr
        assert ok.stderr.count(f"sending the API key to {other.url}") == 1
    assert other.seen and all(auth == f"Bearer {KEY}" for _, _, auth in other.seen)


async def test_a_key_with_a_line_break_is_refused_before_any_request(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    server = await serve(good)
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": "abc\r\nX-Injected: 1"},
    )  # fmt: skip
    assert result.code == 2 and "control character" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert server.seen == []


# --- segments that are not what speech is ------------------------------------------------

PCM = tone_pcm(0.3, 24000)
BAD_SEGMENTS = {
    # a second segment claiming 1 Hz: 7,200 "seconds", once made a 12 GB book
    "one-hertz": wav_header(rate=1, channels=1, bits=16, data=len(PCM)) + PCM,
    # 16,383 channels at 65 kHz, 32-bit: the byte rate overflows 32 bits
    "channels": wav_header(rate=65_000, channels=16_383, bits=32, data=len(PCM) * 8) + PCM * 8,
    "byte-rate": wav_header(rate=24_000, channels=1, bits=16, data=len(PCM), byte_rate=7) + PCM,
    "block-align": wav_header(rate=24_000, channels=1, bits=16, data=len(PCM), align=5) + PCM,
    # the right shape, but five minutes of audio for a sentence
    "runaway": wav_bytes(b"\0" * (24_000 * 2 * 300), 24_000),
    # another format than the run's first segment
    "mixed": wav_bytes(tone_pcm(0.3, 16_000), 16_000),
}


@pytest.mark.parametrize("case", sorted(BAD_SEGMENTS))
async def test_a_segment_unlike_speech_is_refused_never_stored_or_stitched(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path, case: str
) -> None:
    async def first_good_then_bad(_request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            return web.Response(body=GOOD_WAV, content_type="audio/wav")
        await asyncio.sleep(0.2)  # the good one is stored first and sets the run's format
        return web.Response(body=BAD_SEGMENTS[case], content_type="audio/wav")

    server = await serve(first_good_then_bad)
    # --qa off: the format checks alone are counted here (the quality gate would find the
    # 0.3 s "good" answer cut short for its sentence and ask again, one request more).
    result = await narrator(
        "narrate", str(source(tmp_path)),
        *run_args(server.url, tmp_path, "--concurrency", "1", "--qa", "off"),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    report = assert_clean_failure(result, tmp_path, "unusable audio")
    (document,) = report["documents"]  # type: ignore[misc]
    assert len(server.seen) <= 2 * document["chunks"]  # each tried --retries times, no more
    assert "gave up after 2 attempts" in json.dumps(report)


async def test_bad_audio_behind_a_link_is_refused_too(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    async def link_to_bad(request: web.Request, _n: int) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"audio": {"url": f"{server.url}/a.wav"}}, status=201)
        return web.Response(body=BAD_SEGMENTS["channels"])

    server = await serve(link_to_bad)
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "16383 channels")


def test_the_stitcher_refuses_a_piece_or_gap_beyond_its_bound(tmp_path: Path) -> None:
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(b"\0" * 24_000 * 2 * 30, 24_000))  # 30 s
    out = tmp_path / "book.wav"
    with pytest.raises(AudioError, match="more than its text allows"):
        stitch_wav([Piece(long, 0, max_seconds=20.0)], out)
    with pytest.raises(AudioError, match="cap"):
        stitch_wav([Piece(long, 0), Piece(long, MAX_GAP_MS + 1)], out)
    silly = tmp_path / "silly.wav"
    silly.write_bytes(BAD_SEGMENTS["channels"])
    with pytest.raises(AudioError, match="channels"):
        stitch_wav([Piece(silly, 0)], out)
    assert not out.exists() and list(tmp_path.glob(".book.wav*")) == []
    stitch_wav([Piece(long, 0, max_seconds=40.0)], out)  # within bounds it writes
    assert read_wav_info(out).seconds == pytest.approx(30.0)


# --- answers too big, too deep, too loud ---------------------------------------------------

HUGE = 80 * 1024 * 1024  # over the 72 MiB cap on an answer


async def stream(
    request: web.Request, head: bytes, fill: bytes, *, status: int
) -> web.StreamResponse:
    response = web.StreamResponse(status=status)
    response.enable_chunked_encoding()  # no Content-Length: the cap must hold while reading
    await response.prepare(request)
    await response.write(head)
    block = fill * (1024 * 1024 // len(fill))
    for _ in range(HUGE // len(block)):
        await response.write(block)
    return response


@pytest.mark.parametrize("kind", ["json", "wav"])
async def test_a_huge_answer_is_cut_off_at_the_cap(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path, kind: str
) -> None:
    async def huge(request: web.Request, _n: int) -> web.StreamResponse:
        if kind == "json":
            return await stream(request, b'{"audio": "', b"x", status=201)
        return await stream(
            request, wav_header(rate=24_000, channels=1, bits=16, data=HUGE), b"\0", status=200
        )

    server = await serve(huge)
    (tmp_path / "t.txt").write_text("One short sentence.")
    result = await narrator(
        "narrate", str(tmp_path / "t.txt"), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "byte cap")


@pytest.mark.parametrize("status", [201, 503])
async def test_deeply_nested_json_is_a_refused_answer(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path, status: int
) -> None:
    async def nested(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(body=b"[" * 200_000, status=status, content_type="application/json")

    server = await serve(nested)
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "gave up after 2 attempts")


async def test_a_service_message_is_cleaned_and_cut(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    message = "\x1b]0;owned\x07\x1b[2J\x1b[31mbad\rthing\x00" + "A" * 5_000_000

    async def loud(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.json_response({"message": message, "statusCode": 400}, status=400)

    server = await serve(loud)
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    # A 400 on the first request that is not about its text ends the run: exit 2.
    report = assert_clean_failure(result, tmp_path, "bad thing AAAA", code=2)
    assert "\x1b" not in result.stderr and "\x00" not in result.stderr
    assert len(result.stderr) < 5_000
    errors = report["errors"]
    assert isinstance(errors, list)
    assert all(len(e) < 1_000 and "\x1b" not in e for e in errors)


# --- document bombs and the spending guard --------------------------------------------------

CONTAINER = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles>
<rootfile full-path="content.opf" media-type="application/oebps-package+xml"/>
</rootfiles>
</container>"""
OPF = b"""<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier>
<dc:title>Bomb</dc:title><dc:language>en</dc:language></metadata>
<manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest>
<spine><itemref idref="c1"/></spine></package>"""


def make_epub(path: Path, blocks: Callable[[], Iterator[bytes]]) -> Path:
    """An EPUB whose one chapter is the ``blocks``, streamed into the archive."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER)
        archive.writestr("content.opf", OPF)
        with archive.open("c1.xhtml", "w", force_zip64=True) as chapter:
            chapter.write(b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>')
            for block in blocks():
                chapter.write(block)
            chapter.write(b"</p></body></html>")
    return path


def sentences(count: int) -> Iterator[bytes]:
    """Varied sentences, so the archive stays modest (no bomb) but the text is long."""
    rng = random.Random(7)
    for _ in range(count // 100):
        yield b" ".join(b" ".join(rng.choices(WORDS, k=12)).capitalize() + b"." for _ in range(100))


WORDS = (
    b"the of and to in is was he for it with as his on be at by had not are but from or "
    b"have an they which one you were her all she there would their we him been has when "
    b"who will more no if out so said what up its about into than them can only other new"
).split()


async def test_an_epub_bomb_is_refused_before_it_is_inflated(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    bomb = make_epub(tmp_path / "bomb.epub", lambda: (b"a " * 512 * 1024 for _ in range(256)))
    assert bomb.stat().st_size < 1_000_000  # 256 MB of text in well under a megabyte
    estimate = await narrator("estimate", str(bomb))
    assert estimate.code == 2 and "Traceback" not in estimate.stderr  # nothing readable
    assert "inflate to 268 MB" in estimate.stderr and "--max-text-mb" in estimate.stderr
    server = await serve(good)
    narrate = await narrator(
        "narrate", str(bomb), *run_args(server.url, tmp_path), env={"AIMLAPI_KEY": KEY}
    )
    assert narrate.code == 2 and "inflate to" in narrate.stderr
    assert "Traceback" not in narrate.stderr and server.seen == []


async def test_a_run_costing_more_than_a_book_needs_yes(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    # A tenth of a long novel at ten times the default price: over the default $10 all the
    # same, and a tenth of the text to parse.
    book = make_epub(tmp_path / "long.epub", lambda: sentences(2_000))
    assert book.stat().st_size < 1_000_000
    server = await serve(good)
    args = run_args(server.url, tmp_path, "--max-chars", "600")
    dear = ["--price-per-10k-chars", "1"]
    refused = await narrator("narrate", str(book), *args, *dear, env={"AIMLAPI_KEY": KEY})
    assert refused.code == 2 and server.seen == []
    assert "over $10.00 (--confirm-above)" in refused.stderr and "--yes" in refused.stderr
    # The threshold is a setting; --yes (or a --max-cost) lets the run go.
    short = source(tmp_path)
    low = ["--confirm-above", "0.0001"]
    assert (await narrator("narrate", str(short), *args, *low, env={"AIMLAPI_KEY": KEY})).code == 2
    assert server.seen == []
    yes = await narrator("narrate", str(short), *args, *low, "--yes", env={"AIMLAPI_KEY": KEY})
    assert yes.code == 0, yes.stderr
    assert server.seen


# --- where links and pages may lead ----------------------------------------------------------


async def test_audio_links_to_private_addresses_are_refused_at_every_hop(
    serve: Callable[..., Awaitable[Hostile]], tmp_path: Path
) -> None:
    inside = await serve(good, "127.0.0.2")  # another loopback address: not the endpoint's

    async def links(request: web.Request, _n: int) -> web.StreamResponse:
        if request.method == "POST":
            to = f"{inside.url}/a.wav" if mode[-1] == "direct" else f"{endpoint.url}/hop"
            return web.json_response({"audio": {"url": to}}, status=201)
        raise web.HTTPFound(f"{inside.url}/a.wav")  # the endpoint's own link redirects inside

    endpoint = await serve(links)
    (tmp_path / "t.txt").write_text("One short sentence.")
    mode: list[str] = []
    for how in ("direct", "redirect"):
        mode.append(how)
        result = await narrator(
            "narrate", str(tmp_path / "t.txt"), *run_args(endpoint.url, tmp_path, "--force"),
            env={"AIMLAPI_KEY": KEY},
        )  # fmt: skip
        assert_clean_failure(result, tmp_path, "refusing 127.0.0.2", "--allow-host 127.0.0.2")
        assert inside.seen == []
    allowed = await narrator(
        "narrate", str(tmp_path / "t.txt"),
        *run_args(endpoint.url, tmp_path, "--force", "--allow-host", "127.0.0.2"),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert allowed.code == 0, allowed.stderr
    assert inside.seen and all(auth is None for _, _, auth in inside.seen)


async def test_url_inputs_on_private_addresses_are_refused_at_every_hop(
    serve: Callable[..., Awaitable[Hostile]], tmp_path: Path
) -> None:
    async def page(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(text="A private page. It must stay private.", content_type="text/plain")

    inside = await serve(page, "127.0.0.2")

    async def redirect(request: web.Request, _n: int) -> web.StreamResponse:
        if request.path == "/away":
            raise web.HTTPFound(f"{inside.url}/secret")
        return web.Response(text="A page on loopback. It is fine.", content_type="text/plain")

    outside = await serve(redirect)
    refused = await narrator("estimate", f"{outside.url}/page")
    assert refused.code == 1 and "refusing 127.0.0.1" in refused.stderr
    allowed = await narrator("estimate", f"{outside.url}/page", "--allow-host", "127.0.0.1")
    assert allowed.code == 0 and "total (1 document)" in allowed.stdout
    hop = await narrator("estimate", f"{outside.url}/away", "--allow-host", "127.0.0.1")
    assert hop.code == 1 and "refusing 127.0.0.2" in hop.stderr
    assert inside.seen == [] and "Traceback" not in refused.stderr + hop.stderr


async def test_control_characters_never_reach_tags_or_the_feed(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path
) -> None:
    server = await serve(good)
    (tmp_path / "t.txt").write_text("One short sentence.")
    shelf = tmp_path / "shelf"
    made = await narrator(
        "narrate", str(tmp_path / "t.txt"), *run_args(server.url, tmp_path)[:-2],
        "-o", str(shelf / "book.mp3"), "--title", "Bell\x07 and \x1b[31mred\x1b[0m\x0b",
        "--author", "A\x01uthor", env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert made.code == 0, made.stderr
    fed = await narrator("feed", str(shelf), "--base-url", "http://h/", "--title", "Pod\x02cast")
    assert fed.code == 0, fed.stderr
    channel = ET.parse(shelf / "feed.xml").getroot()[0]  # parses: the XML is valid
    assert channel.findtext("title") == "Pod cast"
    assert channel.findtext("item/title") == "Bell and red"


# --- folders: links out, and places that cannot be written ---------------------------------


async def test_a_link_out_of_an_input_folder_is_skipped_unless_followed(tmp_path: Path) -> None:
    folder, outside = tmp_path / "in", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "a.txt").write_text("A document of the folder.")
    (outside / "secret.txt").write_text("A secret that lives elsewhere.")
    (folder / "passwd.txt").symlink_to(outside / "secret.txt")
    (folder / "inner.txt").symlink_to(folder / "a.txt")  # a link within the folder is fine
    result = await narrator("estimate", str(folder))
    assert result.code == 0, result.stderr
    assert "passwd.txt" not in result.stdout and "inner.txt" in result.stdout
    assert "passwd.txt: a link to" in result.stderr and "--follow-symlinks" in result.stderr
    followed = await narrator("estimate", str(folder), "--follow-symlinks")
    assert "passwd.txt" in followed.stdout


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only filesystem (root writes anywhere else); CI must be able to make one."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {mounted.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


async def test_unwritable_folders_are_one_line_before_any_request(
    serve: Callable[[Handler], Awaitable[Hostile]], tmp_path: Path, read_only: Path
) -> None:
    server = await serve(good)
    text = source(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    cases = [
        (["--cache-dir", str(read_only / "cache")], "--cache-dir", "Read-only file system"),
        (["--report", str(read_only / "r.json")], "--report", "Read-only file system"),
        (["-o", str(read_only / "book.wav")], "-o", "Read-only file system"),
        (["-o", str(blocker / "sub" / "book.wav")], "-o", "is a file"),
        (["--cache-dir", str(blocker / "cache")], "--cache-dir", "is a file"),
    ]
    for extra, option, reason in cases:
        result = await narrator(
            "narrate", str(text), *run_args(server.url, tmp_path), *extra,
            env={"AIMLAPI_KEY": KEY},
        )  # fmt: skip
        assert result.code == 2, (extra, result.stderr)
        assert result.stderr.startswith(f"narrator: {option} ") and reason in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert server.seen == []
