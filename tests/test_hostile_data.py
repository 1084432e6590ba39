"""Hostile data against the real ``narrator``: a service's answers, file names, crafted
reports, tags and documents (issue 23). The loopback server and the measured process
are :mod:`tests.test_hostile`'s.

Each case ends in one clear line (or a clean success), no traceback, nothing leaked:
no key in stderr, either report or the store; no raw control character on a terminal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from . import test_hostile
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
