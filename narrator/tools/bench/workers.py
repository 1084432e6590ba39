"""The processes the cluster rows (:mod:`.cluster`) run: ``narrator worker`` children and a
private ``redis-server`` for their queue.

A worker runs in the measured child (``narrator.tools.bench.child``), so what it cost is
its own; its stderr goes to a file, read for the line saying it takes jobs and for the
last line when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import BenchError, Workdir

__all__ = [
    "BOUND", "READY", "WorkerProcess", "check_worker", "child_env", "private_redis", "start_worker",
]  # fmt: skip

READY = "taking documents"  # what `narrator worker` prints once it takes jobs
BOUND = 120.0  # seconds a start or a stop may take before the run is called failed
_PROVIDER_ENV = ("AIMLAPI_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "NARRATOR_API_KEY",
                 "NARRATOR_BASE_URL")  # fmt: skip


def child_env() -> dict[str, str]:
    """The environment without a provider's key or endpoint: each process is given its own."""
    return {k: v for k, v in os.environ.items() if k not in _PROVIDER_ENV}


async def check_worker() -> None:
    """Fails in one line when this narrator has no ``narrator worker`` command."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "narrator", "worker", "--help", env=child_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if await proc.wait() != 0:
        raise BenchError("this narrator has no `narrator worker` command yet (issue 24)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def private_redis(folder: Path) -> AsyncIterator[str]:
    """A redis-server of the bench's own on a free loopback port, no persistence."""
    server = shutil.which("redis-server")
    if server is None:
        raise BenchError("redis-server is not installed (Debian package redis-server)")
    folder.mkdir()
    port = _free_port()
    log = folder / "redis.log"
    proc = await asyncio.create_subprocess_exec(
        server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--logfile", str(log),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            if proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"PING\r\n")
                answer = await reader.read(16)
                writer.close()
                await writer.wait_closed()
                if answer.startswith(b"+PONG"):
                    break
            await asyncio.sleep(0.02)
        else:
            raise BenchError(f"redis-server did not answer on port {port} (log: {log})")
        if proc.returncode is not None:
            raise BenchError(f"redis-server did not start (log: {log})")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@dataclass
class WorkerProcess:
    """A running ``narrator worker`` (in the measured child) and its log file."""

    proc: asyncio.subprocess.Process
    log: Path
    usage: Path

    def last_line(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    async def ready(self) -> None:
        for _ in range(int(BOUND / 0.05)):
            if READY in self.log.read_text(encoding="utf-8", errors="replace"):
                return
            if self.proc.returncode is not None:
                raise BenchError(f"worker: exit {self.proc.returncode}: {self.last_line()}")
            await asyncio.sleep(0.05)
        raise BenchError(f"worker: not taking documents after {BOUND:g} s: {self.last_line()}")

    async def stop(self) -> dict[str, Any]:
        """SIGTERM (in flight finishes, the rest goes back, exit 0); what it cost."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), BOUND)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise BenchError(f"worker: still running {BOUND:g} s after SIGTERM") from None
        if code != 0 or not self.usage.exists():
            raise BenchError(f"worker: exit {code} after SIGTERM: {self.last_line()}")
        data: dict[str, Any] = json.loads(self.usage.read_text(encoding="utf-8"))
        return data

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


async def start_worker(work: Workdir, *args: str) -> WorkerProcess:
    """``narrator worker ARGS`` in a measured child; :meth:`WorkerProcess.ready` waits."""
    usage, log = work.path("usage.json"), work.path("worker.log")
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator.tools.bench.child", str(usage), "cli", "worker",
            *args, env=child_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    return WorkerProcess(proc, log, usage)
