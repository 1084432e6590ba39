"""Overnight runs: every failure class against the emulator with its faults switched on.

Backoff is switched off (``--backoff 0``) so nothing really waits; the emulator's own
knobs make the failures, and the real ``narrator`` process meets them over loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_asyncio

from narrator.tools.emulator import EmulatorConfig, RunningEmulator, billed_key, start_emulator

from .conftest import TEST_KEY, run_cli

TEXT = "# Night Run\n\n" + " ".join(
    f"This is sentence number {i}, which is here to be read aloud." for i in range(24)
)


def frames_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def base_args(url: str, cache: Path, *extra: str) -> list[str]:
    return [
        "--base-url", url, "--cache-dir", str(cache), "--api-key", TEST_KEY, "--quiet",
        "--backoff", "0", "--rpm", "6000", "--max-chars", "130", *extra,
    ]  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "night.txt"
    path.write_text(TEXT)
    return path


async def emulate(port: int = 0, **config: object) -> RunningEmulator:
    return await start_emulator(
        EmulatorConfig(api_key=TEST_KEY, engine="tone", **config),  # type: ignore[arg-type]
        port=port,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The audiobook of an undisturbed run, to compare disturbed runs with (made once for
    the module: the tone voice is deterministic)."""
    folder = tmp_path_factory.mktemp("reference")
    source = folder / "night.txt"
    source.write_text(TEXT)
    emulator = await emulate()
    try:
        out = folder / "reference.wav"
        result = await run_cli(
            "narrate", str(source), "-o", str(out), *base_args(emulator.url, folder / "ref-cache")
        )
        assert result.code == 0, result.stderr
        return frames_of(out)
    finally:
        await emulator.close()


def port_of(emulator: RunningEmulator) -> int:
    return int(emulator.url.rsplit(":", 1)[1])


async def test_transient_faults_are_retried_and_nothing_is_billed_twice(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    emulator = await emulate(fail_rate=0.3, drop_rate=0.15, truncate_rate=0.3, seed=7)
    try:
        out = tmp_path / "out.wav"
        result = await run_cli(
            "narrate", str(source), "-o", str(out), "--report", str(tmp_path / "r.json"),
            *base_args(emulator.url, tmp_path / "cache", "--retries", "20"),
        )  # fmt: skip
        stats = emulator.stats
    finally:
        await emulator.close()
    assert result.code == 0, result.stderr
    assert frames_of(out) == reference
    assert stats.dropped > 0 and stats.truncated > 0 and any(s >= 500 for s in stats.statuses)
    assert max(stats.billed.values()) == 1  # a broken download is fetched again, not re-billed
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["retries"] > 0 and report["documents"][0]["status"] == "done"


async def test_exhausted_retries_fail_the_document_and_a_rerun_retries_only_that(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    flaky = await emulate(fail_rate=0.5, seed=3)
    port = port_of(flaky)
    args = ["narrate", str(source), "-o", str(tmp_path / "o.wav")]
    try:
        first = await run_cli(*args, *base_args(flaky.url, tmp_path / "c", "--retries", "1"))
        failed = flaky.stats.statuses.get(500, 0) + sum(
            n for s, n in flaky.stats.statuses.items() if s in (502, 503, 504)
        )
        billed_first = dict(flaky.stats.billed)
    finally:
        await flaky.close()
    assert first.code == 1
    assert "FAILED" in first.stderr and "gave up after 1 attempts" in first.stderr
    assert not (tmp_path / "o.wav").exists()
    assert failed > 0

    healthy = await emulate(port=port)
    try:
        second = await run_cli(*args, *base_args(healthy.url, tmp_path / "c", "--retries", "1"))
        stats = healthy.stats
    finally:
        await healthy.close()
    assert second.code == 0, second.stderr
    assert stats.requests == failed  # only what failed was sent again
    assert not set(stats.billed) & set(billed_first)
    assert frames_of(tmp_path / "o.wav") == reference


async def test_rate_limits_slow_the_run_down(tmp_path: Path, source: Path) -> None:
    emulator = await emulate(rpm=600, retry_after=0.05)  # 10 a second at most
    try:
        result = await run_cli(
            "narrate", str(source), "-o", str(tmp_path / "o.wav"),
            *base_args(emulator.url, tmp_path / "c", "--rpm", "3000", "--retries", "30"),
            "--report", str(tmp_path / "r.json"),
        )  # fmt: skip
        stats = emulator.stats
    finally:
        await emulator.close()
    assert result.code == 0, result.stderr
    assert "slowing to" in result.stderr
    assert stats.statuses.get(429, 0) > 0
    assert json.loads((tmp_path / "r.json").read_text())["throttled"] == stats.statuses[429]


async def test_out_of_credits_stops_keeps_work_and_resumes(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    poor = await emulate(credits=400)
    port = port_of(poor)
    args = ["narrate", str(source), "-o", str(tmp_path / "o.wav")]
    try:
        first = await run_cli(*args, *base_args(poor.url, tmp_path / "c", "--concurrency", "1"))
        billed_first = dict(poor.stats.billed)
    finally:
        await poor.close()
    assert first.code == 1
    assert "out of credits" in first.stderr and "run the same command again" in first.stderr
    assert "Traceback" not in first.stderr
    assert billed_first and not (tmp_path / "o.wav").exists()

    rich = await emulate(port=port)
    try:
        second = await run_cli(*args, *base_args(rich.url, tmp_path / "c", "--concurrency", "1"))
        billed_second = dict(rich.stats.billed)
    finally:
        await rich.close()
    assert second.code == 0, second.stderr
    assert not set(billed_first) & set(billed_second)  # nothing paid for was paid for again
    assert frames_of(tmp_path / "o.wav") == reference


async def test_a_refused_chunk_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "two.txt"
    long_sentence = "word " * 110  # 550 characters: this service refuses over 500
    path.write_text(f"# One\n\nA fine first chapter.\n\n# Two\n\n{long_sentence.strip()}.")
    # Chunks never exceed the provider's documented 600, so play a stricter service.
    emulator = await emulate(max_characters=500)
    try:
        result = await run_cli(
            "narrate", str(path), "-o", str(tmp_path / "o.wav"),
            *base_args(emulator.url, tmp_path / "c"), "--max-chars", "700",
            "--report", str(tmp_path / "r.json"),
        )  # fmt: skip
        statuses = emulator.stats.statuses
    finally:
        await emulator.close()
    assert result.code == 1
    assert statuses == {201: 3, 400: 1}  # three good chunks, one refused and not retried
    doc = json.loads((tmp_path / "r.json").read_text())["documents"][0]
    assert doc["status"] == "failed" and "500" in doc["errors"][0]


async def test_expired_links_are_synthesized_again(tmp_path: Path, source: Path) -> None:
    # Every download fails, so the first run keeps the paid-for links and gives up.
    broken = await emulate(truncate_rate=1.0)
    port = port_of(broken)
    args = [
        "narrate",
        str(source),
        "-o",
        str(tmp_path / "o.wav"),
        "--report",
        str(tmp_path / "r.json"),
    ]
    try:
        first = await run_cli(*args, *base_args(broken.url, tmp_path / "c", "--retries", "2"))
        chunks = broken.stats.requests
    finally:
        await broken.close()
    assert first.code == 1 and broken.stats.downloads == 2 * chunks
    # A new emulator on the same address has forgotten the old links: they are dead (404).
    fresh = await emulate(port=port)
    try:
        second = await run_cli(*args, *base_args(fresh.url, tmp_path / "c"))
        assert fresh.stats.requests == chunks
    finally:
        await fresh.close()
    assert second.code == 0, second.stderr
    assert json.loads((tmp_path / "r.json").read_text())["resynthesized"] == chunks


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "AIMLAPI_KEY"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "narrator", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _until(condition: Callable[[], bool]) -> None:
    """Poll the in-process emulator's counters (they have no events to wait on)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


async def _wait_until_quiet(emulator: RunningEmulator, *, requests: int) -> None:
    """Until ``requests`` chunks were billed and every billed link has been fetched.

    At such a moment no chunk is paid for but unrecorded: a kill then may lose nothing.
    """
    stats = emulator.stats
    await _until(
        lambda: (
            stats.requests >= requests
            and stats.in_flight == 0
            and stats.downloads >= stats.requests
        )
    )


async def test_kill_9_then_rerun_gives_the_same_book_and_bills_nothing_twice(
    tmp_path: Path, source: Path, reference: bytes
) -> None:
    emulator = await emulate()
    out = tmp_path / "o.wav"
    args = [
        "narrate", str(source), "-o", str(out),
        *base_args(emulator.url, tmp_path / "c", "--rpm", "300", "--concurrency", "1"),
    ]  # fmt: skip
    try:
        proc = await _spawn(*args)
        await _wait_until_quiet(emulator, requests=4)
        proc.kill()  # SIGKILL: no cleanup of any kind
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists()
        killed_at = emulator.stats.requests
        db = sqlite3.connect(tmp_path / "c" / "narrator.sqlite3")
        downloaded = db.execute("SELECT COUNT(*) FROM segments WHERE state='downloaded'").fetchone()
        db.close()
        assert downloaded[0] >= 3
        rerun = await run_cli(*args)
        stats = emulator.stats
    finally:
        await emulator.close()
    assert rerun.code == 0, rerun.stderr
    assert frames_of(out) == reference
    assert max(stats.billed.values()) == 1  # the emulator billed no chunk twice
    assert stats.requests > killed_at and sum(stats.billed.values()) == stats.requests


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_interrupts_save_state_and_say_how_to_resume(
    tmp_path: Path, source: Path, signum: int, code: int
) -> None:
    emulator = await emulate(latency=0.2)
    args = [
        "narrate", str(source), "-o", str(tmp_path / "o.wav"),
        *base_args(emulator.url, tmp_path / "c", "--rpm", "300", "--concurrency", "2"),
    ]  # fmt: skip
    try:
        proc = await _spawn(*args)
        await _until(lambda: emulator.stats.requests >= 2)
        # Requests in flight now are let finish and recorded: nothing is paid for twice.
        proc.send_signal(signum)
        async with asyncio.timeout(15):
            _, err = await proc.communicate()
        after = emulator.stats.requests
        rerun = await run_cli(*args)
        stats = emulator.stats
    finally:
        await emulator.close()
    assert proc.returncode == code
    assert "run the same command again" in err.decode()
    assert "Traceback" not in err.decode()
    assert rerun.code == 0, rerun.stderr
    assert max(stats.billed.values()) == 1
    assert stats.requests > after


async def test_the_key_never_reaches_disk_or_output(tmp_path: Path, source: Path) -> None:
    secret = "sk-NARRATOR-SECRET-5f2e9c"
    emulator = await start_emulator(
        EmulatorConfig(api_key=secret, engine="tone", fail_rate=0.2, seed=1)
    )
    out_dir = tmp_path / "written"
    try:
        good = await run_cli(
            "narrate", str(source), "-o", str(out_dir / "o.wav"),
            "--report", str(out_dir / "r.json"),
            "--base-url", emulator.url, "--cache-dir", str(out_dir / "cache"), "--backoff", "0",
            "--rpm", "6000", "--max-chars", "130", env={"AIMLAPI_KEY": secret},
        )  # fmt: skip
        bad = await run_cli(
            "narrate", str(source), "-o", str(out_dir / "x.wav"),
            "--report", str(out_dir / "x.json"),
            "--base-url", emulator.url, "--cache-dir", str(out_dir / "cache"),
            "--api-key", secret + "-wrong",
        )  # fmt: skip
    finally:
        await emulator.close()
    assert good.code == 0 and bad.code == 2
    for text in (good.stdout, good.stderr, bad.stdout, bad.stderr):
        assert secret not in text
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in files) and any(p.suffix == ".json" for p in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


async def test_bad_inputs_get_clear_answers_and_the_rest_goes_on(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text("A good document. It has two sentences.")
    (folder / "bom-crlf.txt").write_bytes("\ufeffLine one.\r\n\r\nLine two.\r\n".encode())
    (folder / "latin1.txt").write_bytes("Café crème, déjà vu, naïve façade.".encode("latin-1"))
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00" * 20)
    (folder / "blank.txt").write_text("  \n\t\n")
    result = await run_cli(
        "narrate",
        str(folder),
        "-o",
        str(tmp_path / "out"),
        *base_args(emulator.url, tmp_path / "c"),
    )
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    # Left out, each reported once: in its row of the table, with the reason.
    assert "binary.txt" in result.stdout and "NUL" in result.stdout
    assert "blank.txt" in result.stdout
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["bom-crlf.wav", "good.wav", "latin1.wav"]
    # the Latin-1 file was decoded, not mangled: its text reached the service intact
    assert billed_key("Cherry", "Café crème, déjà vu, naïve façade.") in emulator.stats.billed


async def test_only_bad_inputs_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("\n\n")
    result = await run_cli("narrate", str(tmp_path / "blank.txt"), "--provider", "espeak")
    assert result.code == 2
    assert "nothing to narrate" in result.stderr and "Traceback" not in result.stderr


async def test_cache_info_and_clear(
    emulator: RunningEmulator, tmp_path: Path, source: Path
) -> None:
    cache = tmp_path / "c"
    await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "o.wav"), *base_args(emulator.url, cache)
    )
    info = await run_cli("cache", "info", "--cache-dir", str(cache))
    assert info.code == 0 and "downloaded" in info.stdout and "audio files" in info.stdout
    cleared = await run_cli("cache", "clear", "--cache-dir", str(cache))
    assert cleared.code == 0
    info = await run_cli("cache", "info", "--cache-dir", str(cache))
    assert "0 audio files" in info.stdout
