"""Several `narrator` processes on one cache at once (a cron job and a manual run): each
chunk is billed once, and every process makes the same book. Real processes, one real
SQLite file, one loopback emulator counting what it bills."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import wave
from pathlib import Path

import pytest

from narrator.store import Store
from narrator.store.db import retry_locked
from narrator.tools.emulator import EmulatorConfig, start_emulator

from .conftest import TEST_KEY, run_cli, run_process
from .stores import StoreBackend

STORY = {
    "harbour.txt": "The harbour woke slowly. Nets were hung to dry along the wall.",
    "market.txt": "At the market, fish were sold by weight and gossip by the hour.",
    "chapel.txt": "The chapel bell rang twice. Nobody could remember why it was twice.",
}


def _write_inputs(folder: Path) -> None:
    folder.mkdir()
    for name, opening in STORY.items():
        paragraphs = [
            f"{opening} Part {n} goes on a little longer, as stories do." for n in range(8)
        ]
        (folder / name).write_text("\n\n".join(paragraphs))


def frames_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def _args(inputs: list[Path], out: Path, cache: Path, url: str) -> list[str]:
    return [
        "narrate", *map(str, inputs), "-o", str(out), "--format", "wav",
        "--base-url", url, "--cache-dir", str(cache), "--api-key", TEST_KEY, "--quiet",
        "--rpm", "100000", "--concurrency", "3", "--max-chars", "80",
        "--report", str(out / "report.json"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "plans",
    [
        # two runs over the same documents
        [["harbour.txt", "market.txt"], ["harbour.txt", "market.txt"]],
        # three runs over overlapping documents
        [
            ["harbour.txt", "market.txt"],
            ["market.txt", "chapel.txt"],
            ["chapel.txt", "harbour.txt"],
        ],
    ],
    ids=["two-same", "three-overlapping"],
)
async def test_runs_sharing_a_cache_bill_each_chunk_once(
    tmp_path: Path, plans: list[list[str]]
) -> None:
    docs = tmp_path / "docs"
    _write_inputs(docs)
    cache = tmp_path / "cache"
    # Slow enough that the runs overlap for most chunks.
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.2))
    try:
        outs = [tmp_path / f"out{n}" for n in range(len(plans))]
        for out in outs:
            out.mkdir()
        runs = [
            run_process(*_args([docs / name for name in plan], out, cache, emulator.url))
            for plan, out in zip(plans, outs, strict=True)
        ]
        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=120)
        stats = emulator.stats
    finally:
        await emulator.close()
    for result in results:
        assert result.code == 0, result.stderr
        assert "Traceback" not in result.stderr
    db = sqlite3.connect(cache / "narrator.sqlite3")
    try:
        (unique,) = db.execute("SELECT COUNT(*) FROM segments WHERE state='downloaded'").fetchone()
        claims = db.execute("SELECT COUNT(*) FROM claims").fetchone()
    finally:
        db.close()
    assert claims == (0,)  # no claim is left behind
    # Every distinct chunk was billed exactly once across all the runs...
    assert unique > 10
    assert len(stats.billed) == unique
    assert set(stats.billed.values()) == {1}, stats.billed
    # ... and each run reports only the requests it sent.
    reports = [json.loads((out / "report.json").read_text()) for out in outs]
    assert sum(r["requests"] for r in reports) == stats.requests == unique
    # The runs really overlapped and shared the work (each alone takes over a second).
    assert all(r["requests"] > 0 for r in reports), [r["requests"] for r in reports]
    # Identical books wherever two runs made the same document.
    books: dict[str, bytes] = {}
    for out in outs:
        for wav in out.glob("*.wav"):
            frames = frames_of(wav)
            assert books.setdefault(wav.name, frames) == frames, wav.name
    assert set(books) == {Path(n).with_suffix(".wav").name for plan in plans for n in plan}


def test_a_live_claim_holds_and_a_dead_or_lapsed_one_does_not(
    tmp_path: Path, backend: StoreBackend
) -> None:
    first, second = backend.open(tmp_path), backend.open(tmp_path)
    try:
        assert first.claim("k", seconds=60)
        assert not second.claim("k", seconds=60)  # held by a live process
        assert first.claim("k", seconds=60)  # renewing one's own claim
        first.release("k")
        assert second.claim("k", seconds=60)
        second.release("k")
        # a claim that lapsed frees the chunk
        assert first.claim("k", seconds=-1)
        assert second.claim("k", seconds=60)
        second.release("k")
        # a claim of a process that no longer exists on this machine frees it at once
        first.owner = first.owner.split(":")[0] + ":999999999:dead"
        assert first.claim("k", seconds=60)
        assert second.claim("k", seconds=60)
        # ... but one of another machine holds until it expires
        second.release("k")
        first.owner = "elsewhere.example:999999999:alive"
        assert first.claim("k", seconds=60)
        assert not second.claim("k", seconds=60)
        # a claim naming an impossible process of this machine holds nothing (crafted)
        here = socket.gethostname()
        backend.sql(tmp_path, "UPDATE claims SET owner = ?", f"{here}:99999999999999999999:x")
        assert second.claim("k", seconds=60)
    finally:
        first.close()
        second.close()


def test_a_locked_database_is_tried_again_and_other_errors_are_not(tmp_path: Path) -> None:
    store = Store(tmp_path)
    calls: list[int] = []

    def locked_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return "written"

    def broken() -> None:
        raise sqlite3.OperationalError("no such table: nothing")

    try:
        assert retry_locked(locked_twice) == "written" and len(calls) == 3
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            retry_locked(broken)
    finally:
        store.close()


async def test_the_same_command_twice_at_once_makes_one_good_book(tmp_path: Path) -> None:
    """A cron job and a manual run of the very same command: one output, billed once."""
    docs = tmp_path / "docs"
    _write_inputs(docs)
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.2))
    out = tmp_path / "out"
    out.mkdir()
    args = _args([docs / "harbour.txt"], out, tmp_path / "cache", emulator.url)
    args = [a for a in args if a not in ("--report", str(out / "report.json"))]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(run_process(*args), run_process(*args)), 120
        )
        billed = emulator.stats.billed
        again = await run_cli(*args, "--report", str(out / "again.json"))
    finally:
        await emulator.close()
    assert [r.code for r in results] == [0, 0], [r.stderr for r in results]
    assert billed and set(billed.values()) == {1}
    assert sorted(p.name for p in out.iterdir()) == ["again.json", "harbour.wav"]  # no leftovers
    with wave.open(str(out / "harbour.wav"), "rb") as w:
        assert w.getnframes() > 0
    # whichever run wrote it last, the store knows the book as it is on disk
    assert again.code == 0
    report = json.loads((out / "again.json").read_text())
    assert report["documents"][0]["status"] == "up-to-date" and report["requests"] == 0
