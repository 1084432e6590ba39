"""Stopping a run cleanly: a signal ends it with the documents counted and no asyncio
internals on the terminal. The real process against the emulator on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from narrator.tools.emulator import EmulatorConfig, start_emulator

from .conftest import TEST_KEY

INTERNALS = ("Traceback", "never retrieved", "Task exception", "Task was destroyed", "Exception in")


@pytest.mark.parametrize(
    ("signum", "code", "latency"),
    [
        (signal.SIGINT, 130, 0.3),  # requests in flight finish within the grace period
        (signal.SIGTERM, 143, 8.0),  # they do not: the documents are cut off
    ],
)
async def test_a_signal_stops_with_every_document_counted_and_no_internals(
    tmp_path: Path, signum: int, code: int, latency: float
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("north", "south"):
        (docs / f"{name}.txt").write_text(
            "\n\n".join(f"The {name} road, mile {n}, ran between stone walls." for n in range(12))
        )
    emulator = await start_emulator(
        EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=latency)
    )
    env = {k: v for k, v in os.environ.items() if k != "AIMLAPI_KEY"}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator", "narrate", str(docs), "-o", str(tmp_path / "out"),
            "--base-url", emulator.url, "--api-key", TEST_KEY, "--cache-dir", str(tmp_path / "c"),
            "--max-chars", "60", "--concurrency", "2", "--rpm", "100000", "--quiet",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            while emulator.stats.requests < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        proc.send_signal(signum)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        await emulator.close()
    stderr = err.decode()
    assert proc.returncode == code, stderr
    for word in INTERNALS:
        assert word not in stderr, stderr
    assert "0 of 2 audiobooks written" in stderr
    table = out.decode()
    assert "north.txt" in table and "south.txt" in table and "stopped" in table


async def test_a_service_that_never_answers_ends_the_run_saying_what_it_waited_for(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("One sentence. Another sentence. A third one here.")
    # Answers after ten minutes: far beyond the stall timeout, well inside request_timeout.
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=600))
    env = {k: v for k, v in os.environ.items() if k != "AIMLAPI_KEY"}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator", "narrate", str(tmp_path / "a.txt"),
            "-o", str(tmp_path / "a.mp3"), "--base-url", emulator.url, "--api-key", TEST_KEY,
            "--cache-dir", str(tmp_path / "c"), "--max-chars", "20", "--concurrency", "2",
            "--rpm", "100000", "--quiet", "--stall-timeout", "1",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        requests = emulator.stats.requests
    finally:
        await emulator.close()
    stderr = err.decode()
    assert proc.returncode == 1, stderr
    for word in INTERNALS:
        assert word not in stderr, stderr
    host = emulator.url.split("//")[1].split("/")[0]
    (line,) = [x for x in stderr.splitlines() if x.startswith("narrator: no progress")]
    # Until the service has answered once, the first request goes alone (the probe).
    assert f"waiting for 1 request(s) to {host}" in line and "--stall-timeout" in line
    assert requests == 1  # nothing more was sent once it stalled
    assert " stopped " in out.decode() and "0 of 1 audiobooks written" in stderr
