"""Shared fixtures: small WAVs made on the spot, the emulator on a loopback port, and the
command line called in this process (:func:`run_cli`) or as a real one (:func:`run_process`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator
from narrator.util.wav import tone_pcm, wav_bytes

# The real Redis, PostgreSQL and S3 servers of the several-machines tests.
# The store's two backends (SQLite, PostgreSQL) for the store's tests.
pytest_plugins = ["tests.services", "tests.stores"]

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


@pytest.fixture
async def slow_emulator() -> AsyncIterator[RunningEmulator]:
    """A service slow enough (0.15 s a request) that a run is caught half-way."""
    running = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.15))
    try:
        yield running
    finally:
        await running.close()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


_SECRETS = ("AIMLAPI_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "NARRATOR_BASE_URL")


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    full_env.update(env or {})
    return full_env


async def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b"", cwd: Path | None = None
) -> CliResult:
    """``narrator ARGS`` as the command line runs it, called in this process.

    A new interpreter costs most of a second of imports; where a real process proves
    nothing (no signal, kill or lock between processes), the same ``main`` is called on
    a thread of its own, so the emulator on the test's loop keeps answering. Its
    environment, working folder, standard streams and logging are the call's own and
    put back afterwards; an exception that would have ended the process is a traceback
    on its stderr and exit 1, as it would be. Calls run one at a time (the streams are
    the process's); tests of several processes at once use :func:`run_process`.
    """
    return await asyncio.to_thread(_call_main, list(args), _environment(env), stdin, cwd)


_ONE_AT_A_TIME = threading.Lock()


@contextlib.contextmanager
def _no_signal_handlers() -> Iterator[None]:
    # A loop off the main thread cannot take signals; in-process calls get none.
    loop_class = asyncio.SelectorEventLoop  # the Unix loop asyncio.run makes
    with (
        mock.patch.object(loop_class, "add_signal_handler", lambda *a, **k: None),
        mock.patch.object(loop_class, "remove_signal_handler", lambda *a, **k: True),
    ):
        yield


def _call_main(args: list[str], env: dict[str, str], stdin: bytes, cwd: Path | None) -> CliResult:
    from narrator.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
    root = logging.getLogger()
    with _ONE_AT_A_TIME:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        saved_streams = sys.stdin, sys.stdout, sys.stderr, sys.argv
        saved_logging = root.handlers[:], root.level
        try:
            os.environ.clear()
            os.environ.update(env)
            if cwd is not None:
                os.chdir(cwd)
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
            sys.stdout, sys.stderr, sys.argv = stdout, stderr, ["narrator", *args]
            root.handlers = []
            with _no_signal_handlers():
                try:
                    code = main(args)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    traceback.print_exc(file=stderr)
                    code = 1
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
            sys.stdin, sys.stdout, sys.stderr, sys.argv = saved_streams
            root.handlers, _ = saved_logging
            root.setLevel(saved_logging[1])
    return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


async def run_process(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b"", cwd: Path | None = None
) -> CliResult:
    """Run ``python -m narrator ARGS`` as a real process (in ``cwd`` if given)."""
    full_env = _environment(env)
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
