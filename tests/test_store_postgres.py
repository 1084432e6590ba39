"""The store on PostgreSQL: a schema that is not narrator's refused in one line, claims
taken by exactly one of several real processes, a server out of reach waited for with
nothing lost (through a loopback proxy this test controls: the shared server is never
stopped), and the password never shown. The store's own tests run on both backends
(tests/stores.py); these are what only a shared server has."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import narrator
from narrator.errors import ConfigError, StoreRefused
from narrator.store import Store
from narrator.store.queue import QueueRow, read_queue, record
from narrator.store.spend import billed_since, paid_keys
from narrator.util.sanitize import masked_url

from .faults import LoopbackProxy
from .stores import StoreBackend

SECRET = "hunter2-not-shown"  # the test server trusts loopback: a password it ignores


def _with_password(url: str, *, port: int | None = None) -> str:
    """``url`` with a password (and, given ``port``, on that port of 127.0.0.1)."""
    parts = urllib.parse.urlsplit(url)
    host = f"127.0.0.1:{port}" if port else parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:{SECRET}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def schema_url(postgres_schema: str) -> str:
    return postgres_schema


@pytest.fixture
def admin(_postgres_admin: Any, schema_url: str) -> Any:
    """The session's admin connection, working in this test's schema."""
    options = urllib.parse.parse_qs(urllib.parse.urlsplit(schema_url).query)["options"][0]
    schema = options.partition("=")[2]
    _postgres_admin.execute(f"SET search_path = {schema}")
    yield _postgres_admin
    _postgres_admin.execute("SET search_path = public")


# --- what is refused, and how it is shown ---------------------------------------------------


def _tables(admin: Any) -> list[str]:
    rows = admin.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.parametrize(
    ("craft", "why"),
    [
        (["CREATE TABLE users (name TEXT, password TEXT)"], "it has the table 'users'"),
        (["CREATE VIEW segments AS SELECT 1 AS key"], "it has the view 'segments'"),
        (
            ["CREATE TABLE narrator_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
             "INSERT INTO narrator_meta VALUES ('application_id', 1234), "
             "('schema_version', 1)"],
            "another program's database (application id 0x4d2)",
        ),
        (["UPDATE narrator_meta SET value = 99 WHERE name = 'schema_version'"],
         "made by a newer narrator (schema 99"),
        (["CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS "
          "'BEGIN RETURN NEW; END'",
          "CREATE TRIGGER t BEFORE UPDATE ON segments FOR EACH ROW EXECUTE FUNCTION f()"],
         "it has the trigger 't'"),
        (["ALTER TABLE segments DROP COLUMN url_at"], "its table segments lacks url_at"),
        (["CREATE TABLE segments (key TEXT PRIMARY KEY)"], "it has tables but no narrator_meta"),
    ],
    ids=["foreign", "view", "other-program", "newer", "trigger", "lacking", "unstamped"],
)  # fmt: skip
def test_a_schema_that_is_not_narrators_is_refused_in_one_line(
    tmp_path: Path,
    schema_url: str,
    admin: Any,
    craft: list[str],
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = _with_password(schema_url)
    if craft[0].startswith(("UPDATE narrator_meta", "CREATE FUNCTION", "ALTER")):
        Store(tmp_path / "made", url=url).close()  # a real store, then spoiled
    for statement in craft:
        admin.execute(statement)
    before = _tables(admin)
    with pytest.raises(StoreRefused) as refused:
        Store(tmp_path / "cache", url=url)
    message = str(refused.value)
    assert why in message and "left as it is" in message, message
    assert len(message.splitlines()) == 1 and SECRET not in message + caplog.text
    assert _tables(admin) == before  # nothing made, nothing stamped


def test_a_server_that_says_no_is_an_error_at_once_and_the_password_is_never_shown(
    tmp_path: Path, postgres_url: str
) -> None:
    parts = urllib.parse.urlsplit(_with_password(postgres_url))
    wrong = urllib.parse.urlunsplit(parts._replace(path="/no_such_database_here"))
    with pytest.raises(ConfigError, match="no_such_database_here") as refused:
        Store(tmp_path, url=wrong)
    assert SECRET not in str(refused.value) and "***" in str(refused.value)
    with pytest.raises(ConfigError, match="postgresql://") as bad:
        narrator.Settings(provider="espeak", store_url=f"mysql://u:{SECRET}@h/db")
    assert SECRET not in str(bad.value)
    settings = narrator.Settings(provider="espeak", store_url=_with_password(postgres_url))
    assert SECRET not in repr(settings)


def test_a_service_url_is_shown_without_its_password() -> None:
    assert masked_url(f"postgresql://me:{SECRET}@db:5432/n?sslmode=require") == (
        "postgresql://me:***@db:5432/n?sslmode=require"
    )
    assert masked_url(f"postgresql://db/n?user=me&password={SECRET}") == (
        "postgresql://db/n?user=me&password=***"
    )
    assert masked_url(f"host=db password={SECRET}") == "host=db password=***"
    assert SECRET not in masked_url(f"postgresql://me:{SECRET}@[db/n")
    assert masked_url("postgresql://db/n") == "postgresql://db/n"


# --- claims: exactly one process wins each key ------------------------------------------------

_CLAIMER = """
import json, sys, time
from pathlib import Path
from narrator.store import Store
root, url, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
store = Store(Path(root), url=url if url != "-" else None)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
won = [f"key{n}" for n in range(count) if store.claim(f"key{n}", seconds=60, billing_chars=1)]
print(json.dumps({"owner": store.owner, "won": won}), flush=True)
"""


def test_processes_claiming_the_same_keys_each_win_a_key_once(
    tmp_path: Path, backend: StoreBackend
) -> None:
    count, processes = 60, 3
    # Each process is a machine of its own (a folder of its own) on PostgreSQL; on SQLite
    # they share the folder, as processes on one machine do.
    roots = [tmp_path / (f"m{n}" if backend.url else "cache") for n in range(processes)]
    seed = backend.open(roots[0])
    # Half the keys are held by a process of this machine that died: taken over, once.
    dead = f"{socket.gethostname()}:999999999:dead"
    held = [(f"key{n}", dead, 1e12) for n in range(0, count, 2)]
    marks = ", ".join(["(?, ?, ?)"] * len(held))
    backend.sql(roots[0], f"INSERT INTO claims VALUES {marks}", *[v for row in held for v in row])
    seed.close()
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(root), backend.url or "-", str(go), str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for root in roots
    ]  # fmt: skip
    try:
        for process in running:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", process.stderr
        go.touch()
        results = [process.communicate(timeout=60) for process in running]
    finally:
        for process in running:
            process.kill() if process.poll() is None else None
    assert [p.returncode for p in running] == [0] * processes, [err for _, err in results]
    found = [json.loads(out) for out, _ in results]
    won = [key for result in found for key in result["won"]]
    assert sorted(won) == sorted(f"key{n}" for n in range(count))  # each key exactly once
    owners = {key: result["owner"] for result in found for key in result["won"]}
    rows = dict(backend.sql(roots[0], "SELECT key, owner FROM claims"))
    assert rows == owners  # and the table agrees with who thinks they won
    if backend.url:
        assert not (tmp_path / "m0" / "narrator.sqlite3").exists()


# --- PostgreSQL out of reach: waited for, nothing lost ---------------------------------------


@pytest.fixture
def proxy(schema_url: str) -> Iterator[LoopbackProxy]:
    parts = urllib.parse.urlsplit(schema_url)
    running = LoopbackProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield running
    running.close()


def _until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` (an event another thread brings about), 20 s at most."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_an_unreachable_server_is_waited_for_and_no_write_is_lost(
    tmp_path: Path, schema_url: str, proxy: LoopbackProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="narrator")
    url = _with_password(schema_url, port=proxy.port)
    store = Store(tmp_path / "a", url=url)
    store.begin("k", 10)
    waiting = f"waiting for PostgreSQL at 127.0.0.1:{proxy.port}"

    def lines(text: str) -> int:
        return sum(text in record.getMessage() for record in caplog.records)

    # A link paid for while the server is away: the write waits, and is made when it is back.
    proxy.cut()
    written = threading.Event()
    writer = threading.Thread(
        target=lambda: (store.record_link("k", "http://x/paid.wav"), written.set())
    )
    writer.start()
    _until(lambda: lines(waiting) == 1, "the waiting line")
    assert not written.is_set()
    proxy.restore()
    writer.join(timeout=30)
    assert written.is_set() and lines("is back") == 1
    assert store.pending_link("k", max_age=60) == "http://x/paid.wav"
    # A store opened while the server is away waits for it too (one line per outage).
    proxy.cut()
    opened: list[Store] = []
    opener = threading.Thread(target=lambda: opened.append(Store(tmp_path / "b", url=url)))
    opener.start()
    _until(lambda: lines(waiting) == 2, "the second waiting line")
    assert not opened
    proxy.restore()
    opener.join(timeout=30)
    assert opened and opened[0].pending_link("k", max_age=60) == "http://x/paid.wav"
    assert lines(waiting) == 2 and lines("is back") == 2
    assert SECRET not in caplog.text
    opened[0].close()
    store.close()


# --- the library, the queue and what was paid, on PostgreSQL ------------------------------


def test_a_library_run_keeps_its_rows_in_postgresql(tmp_path: Path, schema_url: str) -> None:
    settings = narrator.Settings(
        provider="espeak", cache_dir=tmp_path / "cache", store_url=_with_password(schema_url)
    )
    text = "The lamp was lit at dusk. The ships came home."
    report = narrator.narrate_sync(text, tmp_path / "a.wav", settings)
    assert report.status == "done" and report.requests > 0
    assert not (tmp_path / "cache" / "narrator.sqlite3").exists()  # the rows are elsewhere
    backend = StoreBackend("postgresql", schema_url)
    keys = [key for (key,) in backend.sql(tmp_path, "SELECT key FROM segments")]
    assert len(keys) == report.requests
    again = narrator.narrate_sync(text, tmp_path / "a.wav", settings)
    assert again.status == "up-to-date" and again.requests == 0
    assert paid_keys(tmp_path, [*keys, "other"], url=schema_url) == set(keys)
    assert billed_since(tmp_path, 0, url=schema_url) == len(text)


def test_a_watchers_queue_in_postgresql(tmp_path: Path, schema_url: str) -> None:
    rows = [QueueRow("in.txt", "out.m4a", "waiting", "", ("a", "b")), QueueRow("x", "y", "done")]
    assert read_queue(tmp_path, url=schema_url) == []
    record(tmp_path, rows, url=schema_url)
    record(tmp_path, [QueueRow("x", "y", "failed", "why")], url=schema_url)
    queued = read_queue(tmp_path, url=schema_url)
    found = {row.input: (row.state, row.detail, row.keys) for row in queued}
    assert found == {"in.txt": ("waiting", "", ("a", "b")), "x": ("failed", "why", ())}
    assert not (tmp_path / "narrator.sqlite3").exists()


def test_the_default_store_never_imports_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import narrator.run.pipeline; "
        "from narrator.store import Store; Store(Path(sys.argv[1])).close(); "
        "assert 'psycopg' not in sys.modules, 'psycopg imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def test_a_run_pauses_while_the_server_is_away_and_bills_each_chunk_once(
    tmp_path: Path, schema_url: str, proxy: LoopbackProxy, caplog: pytest.LogCaptureFixture
) -> None:
    from .test_pool import FakeProvider, job, make_pool

    async def until(condition: Any, what: str) -> None:
        for _ in range(2000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never happened: {what}")

    caplog.set_level(logging.INFO, logger="narrator")
    store = Store(tmp_path / "cache", url=_with_password(schema_url, port=proxy.port))
    provider = FakeProvider(latency=0.05)
    jobs = [job(f"chunk {n}") for n in range(12)]
    async with make_pool(provider, store, concurrency=3) as pool:
        running = [asyncio.ensure_future(pool.submit(j)) for j in jobs]
        await until(lambda: provider.texts, "a request sent")
        proxy.cut()  # with requests in flight: paid for while the store is away
        await until(lambda: "waiting for PostgreSQL" in caplog.text, "the waiting line")
        paid_during = len(provider.texts)
        proxy.restore()
        outcomes = await asyncio.gather(*running)
    assert 0 < paid_during < len(jobs)
    assert sorted(provider.texts) == sorted(j.text for j in jobs)  # each billed once
    assert all(o.segment is not None for o in outcomes)
    store.close()
    rows = StoreBackend("postgresql", schema_url).sql(
        tmp_path, "SELECT state, COUNT(*) FROM segments GROUP BY state"
    )
    assert rows == [("downloaded", len(jobs))]  # every paid answer recorded
