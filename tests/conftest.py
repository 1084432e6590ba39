"""Shared fixtures: small WAVs made on the spot, and the emulator on a loopback port."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator
from narrator.util.wav import tone_pcm, wav_bytes

TEST_KEY = "test-key-0123456789"


@pytest.fixture(autouse=True)
def _own_config_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings files confirmed with --trust-settings are remembered in the test's own
    config folder, never the user's (subprocesses inherit it)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write a small tone WAV and return its path."""
    counter = iter(range(10**6))

    def make(seconds: float = 0.1, rate: int = 24000, freq: float = 440.0) -> Path:
        path = tmp_path / f"tone-{next(counter)}.wav"
        path.write_bytes(wav_bytes(tone_pcm(seconds, rate, freq=freq), rate))
        return path

    return make


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """The AIML API emulator with a cheap tone voice, on a free loopback port."""
    running = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone"))
    try:
        yield running
    finally:
        await running.close()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


async def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b"", cwd: Path | None = None
) -> CliResult:
    """Run ``python -m narrator ARGS`` as a real process (in ``cwd`` if given)."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AIMLAPI_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "NARRATOR_BASE_URL")
    }
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "narrator",
        *args,
        env=full_env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())
