"""Batch runs end to end: the real `narrator` command, the emulator and a web site on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY, run_cli
from .test_inputs import ARTICLE_HTML, MARKDOWN, make_epub

ENV = {"AIMLAPI_KEY": TEST_KEY}


def emulator_args(emulator: RunningEmulator, cache: Path, *extra: str) -> list[str]:
    return [
        "--base-url", emulator.url, "--cache-dir", str(cache), "--rpm", "6000",
        "--concurrency", "4", "--max-chars", "200", "--quiet", *extra,
    ]  # fmt: skip


def make_tree(root: Path) -> None:
    """A folder of every input kind, nested, with things to leave out."""
    (root / "notes" / "deep").mkdir(parents=True)
    (root / "intro.txt").write_text("A plain introduction. It has two sentences.")
    (root / "notes" / "guide.md").write_text(MARKDOWN)
    (root / "notes" / "deep" / "page.html").write_text(ARTICLE_HTML)
    make_epub(root / "tales.epub")
    (root / "notes" / "skip.pdf").write_bytes(b"%PDF-1.4 not read")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.txt").write_text("hidden, not read")


def wavs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """An article at /article; everything else is 404."""

    async def article(request: web.Request) -> web.Response:
        return web.Response(text=ARTICLE_HTML, content_type="text/html")

    app = web.Application()
    app.router.add_get("/article", article)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_folder_is_mirrored_then_skipped_when_up_to_date(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    src, out, cache = tmp_path / "in", tmp_path / "out", tmp_path / "cache"
    make_tree(src)
    args = ["narrate", str(src), "-o", str(out), *emulator_args(emulator, cache)]
    report_path = tmp_path / "report.json"

    first = await run_cli(*args, "--report", str(report_path), env=ENV)
    assert first.code == 0, first.stderr
    assert wavs(out) == ["intro.wav", "notes/deep/page.wav", "notes/guide.wav", "tales.wav"]
    report = json.loads(report_path.read_text())
    assert [d["status"] for d in report["documents"]] == ["done"] * 4
    requests = emulator.stats.requests
    assert report["totals"]["requests"] == requests > 0
    assert report["totals"]["chunks"] == sum(d["chunks"] for d in report["documents"])
    assert report["totals"]["audio_seconds"] > 0 and report["errors"] == []
    # The table on stdout: one row per document with its status.
    rows = [line for line in first.stdout.splitlines() if " done " in line]
    assert len(rows) == 4 and sum(str(out) in row for row in rows) == 4

    # Nothing changed: nothing is sent, nothing is rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    second = await run_cli(*args, "--report", str(report_path), env=ENV)
    assert second.code == 0, second.stderr
    assert emulator.stats.requests == requests
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == mtimes
    report = json.loads(report_path.read_text())
    assert [d["status"] for d in report["documents"]] == ["up-to-date"] * 4
    assert report["totals"]["up_to_date"] == 4

    # One document edited, one audiobook deleted, a setting that changes the audio for
    # nobody: exactly those two are made again (from the cache where chunks are the same).
    (src / "intro.txt").write_text("A changed introduction.")
    (out / "tales.wav").unlink()
    third = await run_cli(*args, "--report", str(report_path), env=ENV)
    assert third.code == 0, third.stderr
    statuses = {
        Path(d["input"]).name: d["status"] for d in json.loads(report_path.read_text())["documents"]
    }
    assert statuses == {
        "intro.txt": "done",
        "guide.md": "up-to-date",
        "page.html": "up-to-date",
        "tales.epub": "done",
    }
    assert emulator.stats.requests == requests + 1  # only the edited sentence was new

    # A different gap changes every audiobook; --force redoes them all, whatever changed.
    fourth = await run_cli(*args, "--gap-ms", "100", "--report", str(report_path), env=ENV)
    assert fourth.code == 0, fourth.stderr
    assert {d["status"] for d in json.loads(report_path.read_text())["documents"]} == {"done"}
    fifth = await run_cli(
        *args, "--gap-ms", "100", "--force", "--report", str(report_path), env=ENV
    )
    assert fifth.code == 0, fifth.stderr
    assert {d["status"] for d in json.loads(report_path.read_text())["documents"]} == {"done"}
    assert emulator.stats.requests == requests + 1  # every chunk came from the cache


async def test_one_failing_document_does_not_stop_the_others(
    emulator: RunningEmulator, site: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("This document is fine. It will be narrated.")
    bad = tmp_path / "bad.epub"
    bad.write_bytes(b"not an epub at all")
    out = tmp_path / "out"
    report_path = tmp_path / "report.json"
    result = await run_cli(
        "narrate", str(good), f"{site}/article", f"{site}/gone", str(bad), "-o", str(out),
        "--report", str(report_path), *emulator_args(emulator, tmp_path / "c"), env=ENV,
    )  # fmt: skip
    assert result.code == 1
    assert "Traceback" not in result.stderr
    # The URL's audiobook is named after the page title.
    assert wavs(out) == ["The Lighthouse Keeper.wav", "good.wav"]
    report = json.loads(report_path.read_text())
    assert [(Path(d["input"]).name, d["status"]) for d in report["documents"]] == [
        ("good.txt", "done"),
        ("article", "done"),
        ("gone", "failed"),
        ("bad.epub", "skipped"),  # a local file that is not a document is only left out
    ]
    assert "HTTP 404" in report["documents"][2]["errors"][0]
    totals = report["totals"]
    assert (totals["done"], totals["failed"], totals["skipped"]) == (2, 1, 1)
    assert len(report["errors"]) == 1
    assert "HTTP 404" in result.stderr  # a failure: on stderr
    assert "not a readable EPUB" in result.stdout  # left out: its row in the table says why


async def test_estimate_sends_nothing_and_adds_up(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    make_tree(src)
    (src / "chinese.txt").write_text("今天天气很好。我们去公园散步吧。" * 30)
    result = await run_cli(
        "estimate", "in", "--max-chars", "200", "--rpm", "60", "--concurrency", "2",
        "--price-per-10k-chars", "1", "--assume-latency", "4", env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert emulator.stats.requests == 0
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("in/")}
    assert len(rows) == 5
    assert rows["in/chinese.txt"][1] == "zh"
    assert rows["in/intro.txt"][1:3] == ["en", "1"]
    total = next(line for line in lines if line.startswith("total (5 documents)")).split()
    chunks = sum(int(row[2]) for row in rows.values())
    chars = sum(int(row[3].replace(",", "")) for row in rows.values())
    assert int(total[3]) == chunks and int(total[4].replace(",", "")) == chars
    assert total[5] == f"${chars / 10_000:,.2f}"
    # 2 in flight at 4 s each is one start every 2 s (slower than 60 rpm); the last takes 4 s.
    seconds = (chunks - 1) * 2 + 4
    assert total[6] == f"{seconds // 60}:{seconds % 60:02d}"
    assert "$1.00 per 10,000 billing characters" in result.stdout
    assert "4 s per request" in result.stdout

    dry = await run_cli("narrate", str(src), "--dry-run", "--max-chars", "200", env=ENV)
    assert dry.code == 0, dry.stderr
    assert "total (5 documents)" in dry.stdout and emulator.stats.requests == 0
    assert not list(tmp_path.rglob("*.wav"))


async def test_max_cost_refuses_to_start(emulator: RunningEmulator, tmp_path: Path) -> None:
    source = tmp_path / "long.txt"
    source.write_text("A sentence of some length goes here. " * 300)  # about 11,000 chars
    args = ["narrate", str(source), "-o", str(tmp_path / "long.wav")]
    refused = await run_cli(
        *args, "--max-cost", "0.05", *emulator_args(emulator, tmp_path / "c"), env=ENV
    )
    assert refused.code == 2
    assert "over --max-cost $0.05" in refused.stderr and "$0.11" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert emulator.stats.requests == 0 and not (tmp_path / "long.wav").exists()
    allowed = await run_cli(
        *args, "--max-cost", "0.50", *emulator_args(emulator, tmp_path / "c"), env=ENV
    )
    assert allowed.code == 0, allowed.stderr
    assert emulator.stats.requests > 0


async def test_settings_file_sits_between_flags_and_defaults(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "t.txt"
    source.write_text(" ".join(f"Sentence {n:02d} is here." for n in range(40)))
    (tmp_path / "narrator.toml").write_text(
        f'base-url = "{emulator.url}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\n'
        f'output = "{tmp_path / "books"}/"\n'
        "max_chars = 100\n"
        "rpm = 6000\n"
        "price_per_10k_chars = 2.0\n"
        "quiet = true\n"
    )
    # The file in the current folder is found; its values replace the built-in defaults
    # (its price, a spending limit's input, once the file is confirmed: see test_trust).
    estimate = await run_cli("estimate", "t.txt", "--trust-settings", env=ENV, cwd=tmp_path)
    assert estimate.code == 0, estimate.stderr
    row = next(line for line in estimate.stdout.splitlines() if line.startswith("t.txt"))
    assert row.split()[2] == "10"  # 839 characters, whole sentences, at most 100 a chunk
    assert "$2.00 per 10,000" in estimate.stdout
    # A flag wins over the file.
    flagged = await run_cli("estimate", "t.txt", "--max-chars", "400", env=ENV, cwd=tmp_path)
    row = next(line for line in flagged.stdout.splitlines() if line.startswith("t.txt"))
    assert row.split()[2] == "3"
    # narrate takes the output folder, the server and the cache from the file (the server
    # only once confirmed: a file found in the current folder is not the user's own; the
    # confirmation above is remembered while the file stays the same).
    run = await run_cli("narrate", str(source), env=ENV, cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert (tmp_path / "books" / "t.wav").exists() and emulator.stats.requests == 10

    # --config names another file; bad values and secrets are one clear line, exit 2.
    other = tmp_path / "other.toml"
    for content, message in [
        ("max_chars = 700\nrpm = 0\n", "rpm: expected a number greater than 0"),
        ('api_key = "sk-secret"\n', "secrets are not read"),
        ("colour = 1\n", "unknown setting 'colour'"),
        ("rpm = [1\n", "not valid TOML"),
        ("quiet = 1\n", "true or false"),
    ]:
        other.write_text(content)
        bad = await run_cli("narrate", str(source), "--dry-run", "--config", str(other), env=ENV)
        assert bad.code == 2, (content, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr
        assert "sk-secret" not in bad.stderr
    missing = await run_cli("estimate", str(source), "--config", str(tmp_path / "nope.toml"))
    assert missing.code == 2 and "no such file" in missing.stderr
