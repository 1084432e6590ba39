"""The tools: ``narrator serve`` and ``narrator demo`` as the real processes a user starts,
the emulator's dialect registry, and the tools' modules kept small."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import narrator.tools
from narrator.synth.providers.dashscope import PATH as DASHSCOPE_PATH
from narrator.tools.emulator import DIALECTS, EmulatorConfig, start_emulator
from narrator.tools.emulator.dialect import Answer, Dialect, Reject, parse_object
from narrator.util.wav import parse_wav, read_wav_info

from .conftest import TEST_KEY, run_cli

AIML_BODY = {"model": "alibaba/qwen3-tts-flash", "text": "Hello there.", "voice": "Cherry"}
DASHSCOPE_BODY = {"model": "qwen3-tts-flash", "input": {"text": "Hello there.", "voice": "Cherry"}}


async def start_serve(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """``narrator serve --port 0 ARGS`` and the endpoint it says it listens on."""
    env = {k: v for k, v in os.environ.items() if k != "NARRATOR_BASE_URL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "narrator", "serve", "--port", "0", "--engine", "tone", *args,
        env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    prefix = "narrator serve: listening on "
    assert line.startswith(prefix), line
    base_url, hint = line.removeprefix(prefix).strip().split(" ", 1)
    path = hint.split("POST ")[1].rstrip(")")
    assert "--base-url" in hint
    return proc, base_url + path


async def stop(proc: asyncio.subprocess.Process, signum: int) -> tuple[int, bytes, bytes]:
    proc.send_signal(signum)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_serve_answers_on_the_port_it_prints_and_stops_cleanly(signum: int) -> None:
    proc, endpoint = await start_serve("--api-key", TEST_KEY)
    try:
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/v1/tts")
        assert not endpoint.startswith("http://127.0.0.1:0/")
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {TEST_KEY}"}
            async with http.post(endpoint, json=AIML_BODY, headers=headers) as resp:
                assert resp.status == 201
                url = (await resp.json())["audio"]["url"]
            async with http.get(url) as resp:
                assert resp.status == 200
                wav = await resp.read()
            async with http.post(endpoint, json=AIML_BODY) as resp:
                assert resp.status == 401  # the key it was given is the only one
    finally:
        code, out, err = await stop(proc, signum)
    assert parse_wav(wav, len(wav)).data_size > 0
    assert (code, out, err) == (0, b"", b"")


async def test_serve_plays_the_api_it_is_told() -> None:
    proc, endpoint = await start_serve("--api", "dashscope")
    try:
        assert endpoint.endswith(DASHSCOPE_PATH)
        base = endpoint.removesuffix(DASHSCOPE_PATH)
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer any"}
            async with http.post(endpoint, json=DASHSCOPE_BODY, headers=headers) as resp:
                assert resp.status == 200
                assert (await resp.json())["output"]["audio"]["url"].startswith(base)
            # Only the selected API is routed: an AIML API client gets 404.
            async with http.post(base + "/v1/tts", json=AIML_BODY, headers=headers) as resp:
                assert resp.status == 404
            async with http.get(base + "/_emulator/stats", headers=headers) as resp:
                stats = await resp.json()
        assert stats["requests"] == 1 and stats["statuses"] == {"200": 1}
    finally:
        code, _, _ = await stop(proc, signal.SIGINT)
    assert code == 0


async def test_demo_narrates_a_folder_through_its_own_emulator(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "one.txt").write_text(
        "Chapter one.\n\nA short line to read aloud.\n", encoding="utf-8"
    )
    (books / "two.txt").write_text("The second book. It is short.\n", encoding="utf-8")
    out = tmp_path / "out"
    result = await run_cli("demo", str(books), "-o", str(out), "--quiet", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "narrator demo: the AIML API emulator is listening on http://127.0.0.1:" in result.stderr
    assert f"Audiobooks are in {out.resolve()}/" in result.stdout
    # Each also as a read-along book, from the same two requests.
    assert "4 of 4 audiobooks written; 2 requests" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["one.epub", "one.wav", "two.epub", "two.wav"]
    one, two = (read_wav_info(out / name) for name in ("one.wav", "two.wav"))
    # Real speech from eSpeak, not silence: the longer text takes longer to read.
    assert one.seconds > two.seconds > 0.5
    # It narrated in a cache of its own, gone afterwards: nothing left in the folder given.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books", "out"]


async def test_demo_puts_one_file_into_the_output_folder_even_before_it_exists(
    tmp_path: Path,
) -> None:
    # `narrator demo FILE` with the default `-o out` once failed: "out" has no extension.
    (tmp_path / "note.txt").write_text("A single short note.\n", encoding="utf-8")
    result = await run_cli("demo", "note.txt", "--quiet", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert f"Audiobooks are in {(tmp_path / 'out').resolve()}/" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["note.epub", "note.wav"]
    assert read_wav_info(tmp_path / "out" / "note.wav").seconds > 0.5


async def test_demo_without_inputs_left_is_a_one_line_error(tmp_path: Path) -> None:
    result = await run_cli("demo", str(tmp_path / "missing"), "-o", str(tmp_path / "out"))
    assert result.code == 2
    assert result.stderr.startswith("narrator: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _echo_validate(body: bytes, limit: int | None) -> tuple[str, str, int]:
    text = parse_object(body).get("say")
    if not isinstance(text, str) or not text:
        raise Reject(400, "say what?")
    return "Cherry", text, len(text)


def _echo_error(
    status: int, code: str, message: str, path: str, request_id: str, headers: dict[str, str]
) -> web.Response:
    return web.json_response({"oops": code, "why": message}, status=status, headers=headers)


def _echo_success(answer: Answer) -> web.Response:
    return web.Response(status=200, body=answer.wav, content_type="audio/wav")


ECHO_REFUSALS = {
    "auth": (401, "key"), "rate": (429, "slow"), "busy": (429, "busy"),
    "invalid": (400, "bad"), "credits": (402, "pay"), "server": (None, "down"),
}  # fmt: skip


async def test_a_dialect_is_one_module_and_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    echo = Dialect("echo", "/speak", ECHO_REFUSALS, _echo_validate, _echo_error, _echo_success)
    monkeypatch.setitem(DIALECTS, "echo", echo)
    config = EmulatorConfig(api="echo", api_key=TEST_KEY, engine="tone", credits=3)
    key = {"Authorization": f"Bearer {TEST_KEY}"}
    async with await start_emulator(config) as emulator, aiohttp.ClientSession() as http:
        url = emulator.url + "/speak"
        async with http.post(url, json={"say": "Hi there"}, headers=key) as resp:
            assert resp.status == 200
            wav = await resp.read()
            assert parse_wav(wav, len(wav)).data_size > 0
        async with http.post(url, json={}, headers=key) as resp:
            assert (resp.status, await resp.json()) == (400, {"oops": "bad", "why": "say what?"})
        async with http.post(url, json={"say": "Hi"}) as resp:
            assert resp.status == 401 and (await resp.json())["oops"] == "key"
        async with http.post(url, json={"say": "Hi"}, headers=key) as resp:
            assert resp.status == 402 and (await resp.json())["oops"] == "pay"  # 8 of 3 spent
        async with http.post(emulator.url + "/v1/tts", json={"say": "Hi"}, headers=key) as resp:
            assert resp.status == 404  # only the selected dialect is routed
    assert emulator.stats.billed_characters == 8
    assert emulator.stats.statuses == {200: 1, 400: 1, 401: 1, 402: 1}


def test_a_dialect_must_name_every_refusal() -> None:
    partial = {k: v for k, v in ECHO_REFUSALS.items() if k != "credits"}
    with pytest.raises(ValueError, match="no refusal for credits"):
        Dialect("echo", "/speak", partial, _echo_validate, _echo_error, _echo_success)


def test_the_tools_modules_stay_under_400_lines() -> None:
    # Issue 16: the emulator split by dialect and the bench by concern; a module growing
    # past this is the sign a concern should move out.
    root = Path(narrator.tools.__file__).parent
    sizes = {str(p.relative_to(root)): len(p.read_bytes().splitlines()) for p in root.rglob("*.py")}
    assert len(sizes) > 10  # the tree was found
    assert {name: n for name, n in sizes.items() if n > 400} == {}
