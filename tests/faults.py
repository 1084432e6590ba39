"""Real faults for the several-machines tests: a service that becomes unreachable, a Redis
that restarts. Imported by the tests that need them (not a plugin):

    from tests.faults import LoopbackProxy, private_redis

- :class:`LoopbackProxy`: a TCP proxy on a free loopback port in front of a real service.
  ``cut()`` closes every connection through it and refuses new ones (the service is
  unreachable, as when its machine or the network goes), ``restore()`` listens again on
  the same port. It runs on a thread of its own, so sync tests use it as they are.
- :func:`private_redis`: a redis-server of the test's own on a free port, persisting to an
  append-only file in the test's folder, with ``restart()`` (same port, same data). The
  shared servers from ``scripts/services.sh`` are never stopped or cut by a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

__all__ = ["LoopbackProxy", "PrivateRedis", "free_port", "private_redis"]

_TIMEOUT = 10.0  # seconds a start or a cut may take before the test fails


def free_port() -> int:
    """A loopback port free now (a server started right after gets it in practice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _endpoint(url: str) -> tuple[str, int]:
    """The host and port a service URL names: its own, or its ``endpoint=`` query's (S3)."""
    parts = urlsplit(url)
    endpoint = dict(parse_qsl(parts.query)).get("endpoint")
    where = urlsplit(endpoint) if endpoint else parts
    if where.hostname is None or where.port is None:
        raise ValueError(f"no host:port in {url!r}")
    return where.hostname, where.port


def _moved(url: str, port: int) -> str:
    """``url`` with its host:port (or its ``endpoint=``'s) replaced by 127.0.0.1:``port``."""
    parts = urlsplit(url)

    def swap(netloc: str) -> str:
        user, at, _ = netloc.rpartition("@")
        return f"{user}{at}127.0.0.1:{port}"

    query = parse_qsl(parts.query)
    if any(name == "endpoint" for name, _ in query):
        moved = [
            (name, urlunsplit(urlsplit(v)._replace(netloc=swap(urlsplit(v).netloc))))
            if name == "endpoint"
            else (name, v)
            for name, v in query
        ]
        return urlunsplit(parts._replace(query=urlencode(moved, safe=":/")))
    return urlunsplit(parts._replace(netloc=swap(parts.netloc)))


class LoopbackProxy:
    """A TCP proxy on 127.0.0.1 in front of ``(host, port)``; see the module docstring.

    Use it as a context manager (or ``start()`` / ``close()``)::

        with LoopbackProxy.in_front_of(postgres_url) as proxy:
            run_something(proxy.url)   # the same URL, through the proxy
            proxy.cut()                # PostgreSQL is unreachable
            proxy.restore()            # and back, same port
    """

    def __init__(self, host: str, port: int, *, url: str | None = None) -> None:
        self.target = (host, port)
        self.port = 0  # chosen at start, kept across cut() and restore()
        self._url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far, for tests that check traffic went through

    @classmethod
    def in_front_of(cls, url: str) -> LoopbackProxy:
        """A proxy for the service ``url`` names; :attr:`url` is that URL through it."""
        host, port = _endpoint(url)
        return cls(host, port, url=url)

    @property
    def url(self) -> str:
        if self._url is None:
            raise ValueError("made from (host, port), not from a URL: use .port")
        return _moved(self._url, self.port)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as narrator names the server it waits for."""
        return f"127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def start(self) -> LoopbackProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self.is_cut:
            self._call(self._listen())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_TIMEOUT)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- on the proxy's own thread ---

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(_TIMEOUT)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()  # the listening socket: new connections are refused
            self._server = None
        for transport in list(self._transports):
            transport.abort()  # at once, unflushed: what a dead peer looks like
        self._transports.clear()
        # When cut() returns, every connection through the proxy is gone, not going.
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._transports.add(client_w.transport)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            self._transports.discard(client_w.transport)
            return
        if self.is_cut:  # cut while connecting
            upstream_w.transport.abort()
            client_w.transport.abort()
            return
        self._transports.add(upstream_w.transport)
        pipes = [
            asyncio.ensure_future(self._pipe(client_r, upstream_w)),
            asyncio.ensure_future(self._pipe(upstream_r, client_w)),
        ]
        # Either side ending ends both: a half-open connection is not a fault worth playing.
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        for writer in (client_w, upstream_w):
            self._transports.discard(writer.transport)
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


# --- a private Redis ---------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of one test's own; see :func:`private_redis`."""

    def __init__(self, folder: Path, *, password: str | None = None, persist: bool = True) -> None:
        self.folder = folder
        self.port = free_port()
        self.log = folder / "redis.log"
        self.password = password
        self.persist = persist  # False: a restart starts empty, as a server with no disk
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        # appendfsync always: every write acknowledged is on disk, so even a SIGKILL loses
        # nothing and a test of "no job lost" is about narrator, not about Redis's fsync.
        self._proc = subprocess.Popen(
            [
                _redis_server(), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.folder), "--appendonly", "yes" if self.persist else "no",
                "--appendfsync", "always", "--save", "", "--logfile", str(self.log),
                "--daemonize", "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + _TIMEOUT
        while not self._pong():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                pytest.fail(f"private redis-server on port {self.port} did not start: {self.log}")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Redis writes out and exits) or, with ``kill``, SIGKILL (a crash)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop(kill=kill)
        self.start()

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
                sock.sendall(auth + b"PING\r\n")
                return b"+PONG" in sock.recv(64)
        except OSError:
            return False


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed: apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server on a free port persisting to ``tmp_path``; stopped at the end."""
    folder = tmp_path / "private-redis"
    folder.mkdir(exist_ok=True)
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)
