"""The quality gate end to end: the real ``narrator`` process against an emulator that
bills bad audio (silent, cut, runaway) as good.

The emulator's tone voice is deterministic, so a book made through bad answers must be
identical, sample for sample, to one made with none; and its counters say, per chunk,
how many answers were billed and how many of them were bad: every bad one must have been
paid for again exactly once, and no good one ever.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from pathlib import Path

import pytest
import pytest_asyncio

from narrator.inputs.documents import parse_text
from narrator.run.pipeline import RunReport, Work, narrate_many
from narrator.settings import Settings
from narrator.tools.emulator import EmulatorStats

from .conftest import TEST_KEY, run_cli
from .test_resilience import _spawn, _wait_until_quiet, base_args, emulate, frames_of

TEXT = "# Bad Answers\n\n" + " ".join(
    f"Sentence {i} is here to be read aloud, and it says a little more than that."
    for i in range(39)
)
BAD = ("--qa-retries", "8", "--qa-budget", "100")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The book of a run with no bad answers, made once for the module (the tone voice is
    deterministic)."""
    folder = tmp_path_factory.mktemp("reference")
    source = folder / "book.txt"
    source.write_text(TEXT)
    emulator = await emulate()
    try:
        out = folder / "reference.wav"
        args = base_args(emulator.url, folder / "ref-cache")
        result = await run_cli("narrate", str(source), "-o", str(out), *args)
        assert result.code == 0, result.stderr
        assert emulator.stats.requests == 40  # the chunks; the gate redid none
        return frames_of(out)
    finally:
        await emulator.close()


def assert_each_bad_answer_paid_again_once(stats: EmulatorStats) -> None:
    """Per chunk: billed = its bad answers + one good one. So every bad answer was
    caught and sent again, and nothing good was ever sent twice."""
    assert stats.bad_billed, "the emulator served no bad audio: the test proves nothing"
    for key, billed in stats.billed.items():
        assert billed == stats.bad_billed.get(key, 0) + 1, key


async def test_bad_answers_never_reach_the_book(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    emulator = await emulate(bad_audio_rate=0.25, seed=7)
    out, report = tmp_path / "o.wav", tmp_path / "r.json"
    cache = tmp_path / "c"
    try:
        result = await run_cli(
            "narrate", str(source), "-o", str(out), "--report", str(report),
            *base_args(emulator.url, cache, *BAD),
        )  # fmt: skip
        stats = emulator.stats
    finally:
        await emulator.close()
    assert result.code == 0, result.stderr
    assert set(stats.bad_audio) == {"silent", "cut", "runaway"}
    assert_each_bad_answer_paid_again_once(stats)
    assert frames_of(out) == reference
    data = json.loads(report.read_text())
    assert data["qa_resynthesized"] == sum(stats.bad_audio.values())
    assert data["documents"][0]["flagged"] == [] and data["totals"]["flagged"] == 0
    assert "billed again" in result.stderr
    # The stored segments pass `narrator check`, which sends nothing.
    # The emulator is gone: nothing could be sent. The options find the same segments.
    check = await run_cli("check", str(source), "-o", str(out), "--cache-dir", str(cache),
                          "--base-url", emulator.url, "--max-chars", "130")  # fmt: skip
    assert check.code == 0, check.stdout + check.stderr
    assert "40 segments checked, 0 flagged" in check.stdout


async def test_a_chunk_bad_on_every_attempt_is_kept_flagged_and_the_run_ends(
    tmp_path: Path, source: Path
) -> None:
    emulator = await emulate(bad_audio_rate=1.0, bad_audio_kinds=("runaway",), seed=1)
    out, report = tmp_path / "o.wav", tmp_path / "r.json"
    args = base_args(emulator.url, tmp_path / "c", "--qa-retries", "1")
    try:
        result = await run_cli("narrate", str(source), "-o", str(out), "--report", str(report),
                               *args)  # fmt: skip
        requests = emulator.stats.requests
        again = await run_cli("narrate", str(source), "-o", str(out), "--report",
                              str(tmp_path / "again.json"), *args)  # fmt: skip
        assert emulator.stats.requests == requests  # flagged is final: never paid again
        strict = await run_cli("narrate", str(source), "-o", str(tmp_path / "s.wav"), *args,
                               "--qa", "strict")  # fmt: skip
    finally:
        await emulator.close()
    assert result.code == 0, result.stderr  # the book was written
    doc = json.loads(report.read_text())["documents"][0]
    # The budget (5% of 40 chunks = 2) stops re-synthesis early, with one warning.
    assert result.stderr.count("quality budget is spent") == 1
    assert requests == 40 + 2
    assert len(doc["flagged"]) == 40
    first = doc["flagged"][0]
    assert first["kind"] == "runaway" and first["start"] == 0.0 and first["chunk"] == 1
    starts = [f["start"] for f in doc["flagged"]]
    assert starts == sorted(starts) and starts[-1] > 0
    assert "flagged" in result.stdout.splitlines()[0]
    assert result.stdout.splitlines()[1].split()[5] == "40"
    assert strict.code == 1 and "--qa strict" in strict.stderr
    # The book is up to date; its flagged segments are still reported (without times).
    assert again.code == 0, again.stderr
    rerun = json.loads((tmp_path / "again.json").read_text())["documents"][0]
    assert rerun["status"] == "up-to-date" and len(rerun["flagged"]) == 40
    assert rerun["flagged"][0]["start"] is None and rerun["flagged"][0]["kind"] == "runaway"


async def test_kill_9_never_rebills_what_passed(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    emulator = await emulate(bad_audio_rate=0.25, seed=11)
    out, cache = tmp_path / "o.wav", tmp_path / "c"
    args = [
        "narrate", str(source), "-o", str(out),
        *base_args(emulator.url, cache, *BAD, "--rpm", "600", "--concurrency", "1"),
    ]  # fmt: skip
    try:
        proc = await _spawn(*args)
        # Between requests: an answer billed but not yet received is lost to any kill.
        await _wait_until_quiet(emulator, requests=15)
        proc.kill()
        assert emulator.stats.bad_billed  # it was killed with bad answers behind it
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        db = sqlite3.connect(cache / "narrator.sqlite3")
        passed = db.execute(
            "SELECT COUNT(*) FROM verdicts WHERE status IN ('passed', 'provisional')"
        ).fetchone()[0]
        db.close()
        assert passed >= 5
        rerun = await run_cli(*args)
        stats = emulator.stats
    finally:
        await emulator.close()
    assert rerun.code == 0, rerun.stderr
    assert_each_bad_answer_paid_again_once(stats)
    assert frames_of(out) == reference


async def test_check_finds_bad_segments_of_an_old_cache_and_fix_redoes_only_those(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    out, cache = tmp_path / "o.wav", tmp_path / "c"
    bad = await emulate(bad_audio_rate=0.25, seed=5)
    try:  # a cache made without the gate, as before it existed
        old = await run_cli("narrate", str(source), "-o", str(out),
                            *base_args(bad.url, cache, "--qa", "off"))  # fmt: skip
        spoiled = len(bad.stats.bad_billed)
    finally:
        await bad.close()
    assert old.code == 0, old.stderr
    assert spoiled and frames_of(out) != reference
    clean = await emulate(port=int(bad.url.rsplit(":", 1)[1]))  # same URL: same cache keys
    options = [str(source), "-o", str(out), *base_args(clean.url, cache)]
    try:
        check = await run_cli("check", *options)
        assert clean.stats.requests == 0
        # Over the spending limit: refused before anything is marked or sent.
        refused = await run_cli("check", "--fix", "--max-cost", "0.0001", *options)
        assert clean.stats.requests == 0
        fix = await run_cli("check", "--fix", *options)
        fixed_with = clean.stats.requests
        after = await run_cli("check", *options)
    finally:
        await clean.close()
    assert check.code == 1, check.stderr
    assert f"40 segments checked, {spoiled} flagged" in check.stdout
    assert refused.code == 2 and "over --max-cost" in refused.stderr, refused.stderr
    assert "nothing was sent or marked" in refused.stderr
    lines = [line for line in check.stdout.splitlines() if line.startswith("  chunk ")]
    assert len(lines) == spoiled and all(re.search(r"\(at \d+:\d\d, ", line) for line in lines)
    assert fix.code == 0, fix.stderr
    assert fixed_with == spoiled  # only the flagged ones were sent again
    assert frames_of(out) == reference
    assert after.code == 0 and "0 flagged" in after.stdout


# A heading is a chunk of its own, and so is the body of a chapter this short: one word,
# digits, punctuation alone.
AWKWARD = """# 1990

Yes.

# 1234567890

…

# Mixed

Hello there, 你好，我们今天要讲一个故事。 And then we go home.

这是一个完全用中文写的段落，它在这里是为了被朗读出来。

A last, ordinary sentence to end the short document on.
"""


async def test_awkward_chunks_of_a_short_mixed_document_pass_offline(tmp_path: Path) -> None:
    source = tmp_path / "awkward.txt"
    source.write_text(AWKWARD)
    report = tmp_path / "r.json"
    result = await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "a.wav"), "--provider", "espeak",
        "--cache-dir", str(tmp_path / "c"), "--report", str(report), "--max-chars", "60",
        "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["documents"][0]["chunks"] >= 7
    assert data["qa_resynthesized"] == 0 and data["totals"]["flagged"] == 0, result.stderr
    assert "again" not in result.stderr


# --- the quality budget: re-takes go on while they fix, stop when they do not ------------

LONG = "# Bad Answers\n\n" + " ".join(
    f"Sentence {i} is here to be read aloud, and it says a little more than that."
    for i in range(79)
)  # 80 chunks at --max-chars 130; the tone voice reads 15 characters a second


async def _narrate_with_bad_answers(
    tmp_path: Path, rate: float, kinds: tuple[str, ...] = ("silent", "cut", "runaway")
) -> tuple[RunReport, int, int]:
    """A run with the default gate and budget; its report, the requests and bad answers."""
    emulator = await emulate(bad_audio_rate=rate, bad_audio_kinds=kinds, seed=3)
    settings = Settings(
        base_url=emulator.url, api_key=TEST_KEY, cache_dir=tmp_path / "c", rpm=6000,
        max_chars=130, backoff_base=0, lang="en",
    )  # fmt: skip
    try:
        run = await narrate_many([Work(parse_text(LONG), tmp_path / "o.wav")], settings)
        requests, bad = emulator.stats.requests, sum(emulator.stats.bad_audio.values())
    finally:
        await emulator.close()
    assert run.documents[0].chunks == 80
    return run, requests, bad


async def test_bad_answers_at_random_end_in_a_clean_book_by_default(tmp_path: Path) -> None:
    run, requests, bad = await _narrate_with_bad_answers(tmp_path, 0.08)
    # More bad answers than the budget (5% of 80 chunks = 4): each re-take that fixed
    # its segment gave its share back.
    assert bad > 4, "too few bad answers to test the budget"
    doc = run.documents[0]
    assert doc.status == "done" and doc.flagged == ()
    assert requests == 80 + bad and run.qa_resynthesized == bad
    assert not run.qa_budget_spent


async def test_a_voice_that_always_trips_the_gate_costs_little(tmp_path: Path) -> None:
    # (Not "cut": with nothing but cut answers to learn from, the gate takes the voice for
    # a fast one, and passes them.)
    run, requests, bad = await _narrate_with_bad_answers(tmp_path, 1.0, ("silent", "runaway"))
    # No re-take fixes anything: the budget (4) is spent on the first ones, then every
    # segment is kept and flagged, the book still written.
    assert requests == bad == 80 + 4
    doc = run.documents[0]
    assert doc.status == "done" and len(doc.flagged) == 80 and run.qa_budget_spent
