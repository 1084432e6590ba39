"""The bounded cache: ``cache prune``, the size cap at the end of a run, ``cache info`` by
document. Real ``narrator`` processes (offline voice) on a real SQLite store and files."""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

import pytest

from narrator.cli.argtypes import age, size
from narrator.store import Store

from .conftest import run_cli

ONE = "The lighthouse keeper counted ships. " * 6
TWO = "A river ran through the valley all summer. " * 6


def _files(cache: Path) -> set[Path]:
    return set((cache / "segments").glob("*/*.wav"))


async def _narrate(tmp: Path, name: str, text: str, cache: Path, *flags: str) -> set[Path]:
    """Narrate ``text`` into ``cache``; the segment files it added."""
    before = _files(cache) if cache.exists() else set()
    source = tmp / f"{name}.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp / f"{name}.wav"
    result = await run_cli(
        "narrate", str(source), "-o", str(out), "--provider", "espeak", "--max-chars", "60",
        "--cache-dir", str(cache), "--quiet", *flags,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return _files(cache) - before


def test_sizes_and_ages_read_as_people_write_them() -> None:
    assert size("20GB") == 20 * 10**9 and size("500 MB") == 500 * 10**6 and size("0") == 0
    assert age("30d") == 30 * 86400 and age("12h") == 43200 and age("90m") == 5400
    for bad in ("twenty", "5 parsecs", "-1GB"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a size"):
            size(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="expected an age"):
        age("soon")


async def test_prune_older_than_takes_the_least_recently_used_document(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = await _narrate(tmp_path, "one", ONE, cache, "--cache-max-size", "0")
    two = await _narrate(tmp_path, "two", TWO, cache, "--cache-max-size", "0")
    assert one and two and not one & two
    info = await run_cli("cache", "info", "--cache-dir", str(cache))
    assert info.code == 0
    assert str(tmp_path / "one.wav") in info.stdout and str(tmp_path / "two.wav") in info.stdout
    # "one" was last used 40 days ago (as if narrated then).
    with sqlite3.connect(cache / "narrator.sqlite3") as db:
        old = time.time() - 40 * 86400
        db.execute("UPDATE uses SET used = ? WHERE document LIKE '%one.wav'", (old,))
        db.execute(
            "UPDATE segments SET updated = ? WHERE key IN "
            "(SELECT key FROM uses WHERE document LIKE '%one.wav')",
            (old,),
        )
    result = await run_cli("cache", "prune", "--older-than", "30d", "--cache-dir", str(cache))
    assert result.code == 0, result.stderr
    assert f"{len(one)} segments removed" in result.stdout
    assert _files(cache) == two
    info = await run_cli("cache", "info", "--cache-dir", str(cache))
    assert str(tmp_path / "one.wav") not in info.stdout
    # What is left is whole: "two" again needs no request; "one" is synthesized again.
    assert not await _narrate(tmp_path, "two", TWO + "\n", cache)
    assert await _narrate(tmp_path, "one", ONE + "\n", cache) == one


async def test_prune_max_size_never_takes_a_segment_of_a_run_in_progress(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    one = await _narrate(tmp_path, "one", ONE, cache, "--cache-max-size", "0")
    keys = [p.stem for p in one]
    live = Store(cache)  # a run in this (live) process that uses "one"'s segments
    try:
        live.note_run({"one": keys})
        result = await run_cli("cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
        assert result.code == 0, result.stderr
        assert "0 segments removed" in result.stdout
        assert f"{len(one)} kept for a run in progress" in result.stdout
        assert _files(cache) == one
    finally:
        live.close()
    result = await run_cli("cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
    assert f"{len(one)} segments removed" in result.stdout and not _files(cache)
    missing = await run_cli("cache", "prune", "--cache-dir", str(cache))
    assert missing.code == 2 and "--older-than or --max-size" in missing.stderr


async def test_a_run_enforces_the_cap_at_its_end_and_keeps_its_own(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = await _narrate(tmp_path, "one", ONE, cache, "--cache-max-size", "0")
    # A cap of 1 byte: everything not of this run goes; this run's own segments stay.
    two = await _narrate(tmp_path, "two", TWO, cache, "--cache-max-size", "1")
    assert one and two
    assert _files(cache) == two
    (tmp_path / "narrator.toml").write_text('cache_max_size = "1"\n', encoding="utf-8")
    source = tmp_path / "three.txt"
    source.write_text(ONE, encoding="utf-8")
    result = await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "three.wav"), "--provider", "espeak",
        "--max-chars", "60", "--cache-dir", str(cache), "--quiet", "--config", "narrator.toml",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # The settings file's cap (named: a found one may not set it): "two" went, "three"
    # (= one) stays.
    assert _files(cache) == one
