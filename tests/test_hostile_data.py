"""Hostile data against the real ``narrator``: a service's answers, file names, crafted
reports, tags and documents (issue 23). The loopback server and the measured process
are :mod:`tests.test_hostile`'s.

Each case ends in one clear line (or a clean success), no traceback, nothing leaked:
no key in stderr, either report or the store; no raw control character on a terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from narrator.cli import main
from narrator.store.queue import QueueRow, record

from . import test_hostile
from .conftest import CliResult
from .test_hostile import KEY, Handler, Hostile, assert_clean_failure, narrator, run_args, source

Serve = Callable[[Handler], Awaitable[Hostile]]
serve = test_hostile.serve  # the fixture: a loopback server answering what a test says


def everything_written(tmp_path: Path) -> str:
    """Every byte narrator left under ``tmp_path`` (the store's rows too), as text."""
    texts = []
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and path.suffix != ".txt":
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    database = tmp_path / "cache" / "segments.db"
    for db in [database, *tmp_path.glob("cache/*.db")]:
        if db.exists():
            with sqlite3.connect(db) as conn:
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    texts.extend(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
    return "\n".join(texts)


# --- answers bounded by what they hold ------------------------------------------------------


async def test_an_answer_of_millions_of_tiny_objects_is_refused_in_little_memory(
    serve: Serve, tmp_path: Path
) -> None:
    # 24 MB, a third of the byte cap: 8 million "{}" that were gigabytes once parsed.
    bomb = b"[" + b"{}," * (8 * 1024 * 1024) + b"{}]"

    async def tiny(_request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(body=bomb, status=201 if n % 2 else 503)

    server = await serve(tiny)
    (tmp_path / "t.txt").write_text("One short sentence.")
    result = await narrator(
        "narrate", str(tmp_path / "t.txt"), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "gave up after 2 attempts")
    assert len(server.seen) == 2  # a 503 then a 201, each refused unread


def echo(status: int) -> Handler:
    """A service whose error quotes the request's headers back, key and all."""

    async def answer(request: web.Request, _n: int) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        message = (
            f"invalid request; headers: {{'Authorization': '{auth}'}}; "
            f"authorization={auth}; the key {auth.removeprefix('Bearer ')} is not allowed"
        )
        return web.json_response({"message": message, "code": "Oops"}, status=status)

    return answer


async def test_an_error_echoing_the_key_leaks_it_nowhere(serve: Serve, tmp_path: Path) -> None:
    server = await serve(echo(500))
    report = tmp_path / "report.json"
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "service error 500", "[redacted]")
    assert server.seen and all(auth == f"Bearer {KEY}" for _, _, auth in server.seen)
    page = await narrator("report", str(report), "-o", str(tmp_path / "report.html"))
    assert page.code == 0, page.stderr
    assert KEY not in result.stderr + result.stdout
    assert KEY not in everything_written(tmp_path)
    assert "[redacted]" in report.read_text()


async def test_a_rejected_key_echoed_back_stops_the_run_without_leaking_it(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(echo(401))
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert result.code == 2 and "API key was rejected" in result.stderr
    assert KEY not in result.stderr and KEY not in everything_written(tmp_path)
    assert "Traceback" not in result.stderr and "[redacted]" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False


# --- file names: not UTF-8, terminal escapes, line breaks ---------------------------------

HOSTILE_NAMES = (
    b"bad\xff\xfe.txt",  # not UTF-8
    b"esc\x1b]0;owned\x07\x1b[2J\x1b]52;c;ZWNobyBvd25lZA==\x07.txt",  # title, clear, clipboard
    b"new\nline: FAILED.txt",  # a forged line of output
)


def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for n, name in enumerate(HOSTILE_NAMES):
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(f"Document number {n} has a name of its own.".encode())
    (folder / "plain.txt").write_text("A plain document with a plain name.")
    return folder


def assert_shown(result: CliResult, code: int = 0) -> str:
    """Exit ``code``, no traceback, and no name printed raw: every control character
    and every byte that is not UTF-8 shown as an escape (``narrator`` decoded its output
    as strict UTF-8 already)."""
    out = result.stdout + result.stderr
    assert result.code == code, out
    assert "Traceback" not in out
    assert "\x1b" not in out and "\x07" not in out and "\ufffd" not in result.stderr
    assert "new\nline" not in out
    return out


async def test_hostile_file_names_in_every_command(tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    estimate = assert_shown(await narrator("estimate", str(folder)))
    assert "bad\\xff\\xfe.txt" in estimate and "new\\nline: FAILED.txt" in estimate
    assert "esc\\x1b]0;owned\\x07\\x1b[2J" in estimate and "total (4 documents)" in estimate
    assert_shown(await narrator("words", str(folder)))
    out, cache, report = tmp_path / "out", tmp_path / "cache", tmp_path / "r.json"
    common = ["--provider", "espeak", "--cache-dir", str(cache), "--format", "mp3"]
    narrate = assert_shown(
        await narrator("narrate", str(folder), "-o", f"{out}/", *common, "--report", str(report))
    )
    assert "4 of 4 audiobooks written" in narrate
    # The audiobooks are named in text; the report says which input each came from.
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bad\ufffd\ufffd.mp3", "esc.mp3", "new line: FAILED.mp3", "plain.mp3"]
    data = json.loads(report.read_bytes().decode("utf-8"))  # strict: valid UTF-8
    inputs = {Path(d["input"]).name for d in data["documents"]}
    assert "bad\\xff\\xfe.txt" in inputs and "new\nline: FAILED.txt" in inputs
    check = assert_shown(await narrator("check", str(folder), "-o", f"{out}/", *common))
    assert check.count("1 segments checked, 0 flagged") == 4
    assert_shown(await narrator("cache", "info", "--cache-dir", str(cache)))
    # A name that is not UTF-8 in the folder of audiobooks, too.
    shutil.copy(out / "plain.mp3", os.path.join(os.fsencode(out), b"raw\xff\x1b[2J.mp3"))
    fed = assert_shown(await narrator("feed", str(out), "--base-url", "http://h/"))
    assert "5 episodes" in fed
    urls = {e.get("url") for e in ET.parse(out / "feed.xml").getroot().iter("enclosure")}
    assert "http://h/raw%FF%1B%5B2J.mp3" in urls  # the bytes of the name: it serves the file
    page = tmp_path / "r.html"
    assert_shown(await narrator("report", str(report), "-o", str(page)))
    assert "\x1b" not in page.read_text()


def test_status_shows_a_queued_name_never_obeys_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "in/evil\x1b]0;owned\x07\x1b[2J\nfailed  100%  forged.txt"
    record(tmp_path, [QueueRow(name, "out/x.mp3", "failed", "why: \x1b[31mred\x9b")])
    assert main(["status", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert len(out.splitlines()) == 2  # the row and the counts: no forged line
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\nfailed" in out


def test_an_error_naming_a_hostile_file_is_one_shown_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "gone\x1b[2J\nnarrator: all fine.txt")
    assert main(["estimate", missing]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "\x1b" not in err and "gone\\x1b[2J\\nnarrator" in err


async def test_log_lines_are_shown(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("A document of the folder.")
    (tmp_path / "secret.txt").write_text("Elsewhere.")
    (folder / "link\x1b[2J\nnarrator: ok.txt").symlink_to(tmp_path / "secret.txt")
    err = assert_shown(await narrator("estimate", str(folder)))
    (skipped,) = [line for line in err.splitlines() if "skipped" in line]
    assert "link\\x1b[2J\\nnarrator: ok.txt: a link to" in skipped and "\x1b" not in err
