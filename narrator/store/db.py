"""The store's database: the one place that knows its file, opens it and checks it is
narrator's, with writes retried while another process holds the lock.

Every connection to a cache's database is made here: the :class:`~narrator.store.Store`'s
own (read and write, on the store's thread), and the short-lived ones of a watcher's
queue and of ``narrator status`` (:mod:`.queue`, :mod:`.spend`).

The file is data, never authority (README "Security"). Before anything reads a row, the
file must be narrator's: SQLite's ``application_id`` says so, or, for a store made before
it was stamped, nothing but narrator's tables is in it; its ``user_version`` (the schema)
is not newer than this version reads; each table has the columns this version uses, and
there are no triggers or views. Anything else is refused in one line
(:class:`~narrator.errors.StoreRefused`) before a request is sent, and left untouched.

The second backend, PostgreSQL (:mod:`.postgres`, several machines sharing one store),
is a second implementation of :class:`Backend` (what the repositories ask of a
database); :func:`open_database` picks one by the store's URL (None: this SQLite file),
and imports psycopg only for a ``postgresql://`` URL. The repositories write their SQL
in SQLite's dialect, which the PostgreSQL backend translates.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import ConfigError, StoreRefused
from .schema import APPLICATION_ID, SCHEMA_VERSION, TABLES

__all__ = [
    "FILE_NAME",
    "Backend",
    "Database",
    "database_path",
    "open_database",
    "retry_locked",
    "store_exists",
]

T = TypeVar("T")

FILE_NAME = "narrator.sqlite3"
# SQLite's busy wait (the connection timeout) covers most contention; a write that
# still finds the database locked is tried again this many times before it is an error.
_LOCKED_RETRIES = 20


def database_path(root: Path) -> Path:
    """Where the database of cache folder ``root`` is."""
    return root / FILE_NAME


def store_exists(root: Path) -> bool:
    """Whether cache folder ``root`` has a database (narrator's or not: opening says)."""
    return database_path(root).exists()


# The URL schemes of a PostgreSQL store.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_database(root: Path, url: str | None = None, *, read_only: bool = False) -> Backend:
    """The store's database: cache folder ``root``'s SQLite file, or the PostgreSQL
    database at ``url`` (checked, made if new, waited for while out of reach)."""
    if url is None:
        return Database(root, read_only=read_only)
    if not url.startswith(POSTGRES_SCHEMES):
        from ..util.sanitize import masked_url

        raise ConfigError(f"the store URL {masked_url(url)} is not postgresql://HOST/DB")
    from .postgres import PostgresDatabase  # psycopg only for a store that uses it

    return PostgresDatabase(url, read_only=read_only)


class Backend(Protocol):
    """What the repositories ask of a database. :class:`Database` is SQLite's,
    :class:`~.postgres.PostgresDatabase` PostgreSQL's; ``dialect`` names which, for the
    few queries that differ; ``path`` is the file, if the database is one."""

    @property
    def dialect(self) -> str: ...
    @property
    def path(self) -> Path | None: ...

    def row(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None: ...
    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...
    def write(self, sql: str, params: Sequence[object] = ()) -> None: ...
    def write_many(self, sql: str, params: Iterable[Sequence[object]]) -> None: ...
    def transact(self, work: Callable[[], T]) -> T: ...
    def execute(self, sql: str, params: Sequence[object] = ()) -> None: ...
    def execute_many(self, sql: str, params: Iterable[Sequence[object]]) -> None: ...
    def has_table(self, name: str) -> bool: ...
    def vacuum(self) -> None: ...
    def give_up(self) -> None: ...
    def given_up(self) -> str | None: ...
    def close(self) -> None: ...


class Database:
    """One connection to a cache's SQLite database, checked to be narrator's.

    ``read_only``: a connection that never writes (``narrator status``); it neither makes
    tables nor stamps the file, and a table a newer store lacks reads as empty.
    """

    dialect = "sqlite"

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.path = database_path(root)
        self.read_only = read_only
        if read_only:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
        self.conn = conn
        try:
            retry_locked(self._prepare)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_locked(exc):
                raise
            raise self._refused(f"cannot be read ({exc})") from exc
        except BaseException:
            conn.close()
            raise

    def _prepare(self) -> None:
        self._check()
        if self.read_only:
            return
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL survives a killed process; only a power cut can lose the last
        # rows, and then the files they point to are checked again anyway.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for schema in TABLES.values():
            self.conn.execute(schema)
        if self._pragma("application_id") != APPLICATION_ID:
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        if self._pragma("user_version") < SCHEMA_VERSION:
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _pragma(self, name: str) -> int:
        return int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])

    def _check(self) -> None:
        """Refuse a database that is not narrator's or is newer than this version."""
        stamped = self._pragma("application_id")
        if stamped not in (0, APPLICATION_ID):
            raise self._refused(f"is another program's database (application id {stamped:#x})")
        version = self._pragma("user_version")
        if version > SCHEMA_VERSION:
            raise self._refused(
                f"was made by a newer narrator (schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}): upgrade narrator, or use another --cache-dir"
            )
        objects = self.conn.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
        for kind, name, table in objects:
            if (str(name).startswith("sqlite_") and table in TABLES) or name == "sqlite_stat1":
                continue  # SQLite's own: the index of a primary key, ANALYZE's statistics
            if kind != "table" or name not in TABLES:
                raise self._refused(f"is not narrator's: it has the {kind} {str(name)!r}")
        expected = expected_columns()
        for _, name, _ in objects:
            if name in TABLES:
                columns = {row[1] for row in self.conn.execute(f"PRAGMA table_info({name})")}
                if missing := expected[name] - columns:
                    lacks = ", ".join(sorted(missing))
                    raise self._refused(f"is not narrator's: its table {name} lacks {lacks}")

    def _refused(self, why: str) -> StoreRefused:
        return StoreRefused(
            f"{self.path} {why}; it was left as it is (move it away, or use another --cache-dir)"
        )

    def has_table(self, name: str) -> bool:
        found = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    # --- statements ----------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` reads."""
        return self.conn.execute(sql, params).fetchall()

    def row(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """The first row ``sql`` reads, if any."""
        found: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return found

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """One statement inside :meth:`transact` (which retries the whole)."""
        self.conn.execute(sql, params)

    def execute_many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        """:meth:`execute` for many rows."""
        self.conn.executemany(sql, params)

    def write(self, sql: str, params: Sequence[object] = ()) -> None:
        """One statement that changes rows, retried while another process holds the lock."""
        retry_locked(lambda: self.conn.execute(sql, params))

    def write_many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        rows = list(params)
        retry_locked(lambda: self.conn.executemany(sql, rows))

    def transact(self, work: Callable[[], T]) -> T:
        """``work`` in one write transaction (taken at once: no other writer in between),
        all of it or none, retried from the start while the database is locked."""

        def attempt() -> T:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                return work()

        return retry_locked(attempt)

    def vacuum(self) -> None:
        self.conn.execute("VACUUM")

    def give_up(self) -> None:
        """Nothing: a file waits for no server (a lock is waited for a bounded time)."""

    def given_up(self) -> str | None:
        return None

    def close(self) -> None:
        self.conn.close()


def expected_columns() -> dict[str, frozenset[str]]:
    """Each table's columns, as this version makes it."""
    return {name: frozenset(columns) for name, (columns, _) in _shapes().items()}


def primary_keys() -> dict[str, tuple[str, ...]]:
    """Each table's primary key columns, in order."""
    return {name: keys for name, (_, keys) in _shapes().items()}


@functools.cache
def _shapes() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each table's (columns, primary key), read from its CREATE statement by an
    in-memory SQLite, so the schema is written down once."""
    memory = sqlite3.connect(":memory:")
    try:
        for schema in TABLES.values():
            memory.execute(schema)
        shapes = {}
        for name in TABLES:
            info = memory.execute(f"PRAGMA table_info({name})").fetchall()
            keys = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
            shapes[name] = (tuple(row[1] for row in info), keys)
        return shapes
    finally:
        memory.close()


def retry_locked(write: Callable[[], T]) -> T:
    """Run ``write``, again after a short pause while another process holds the lock."""
    for attempt in range(_LOCKED_RETRIES):
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if attempt + 1 == _LOCKED_RETRIES or not _is_locked(exc):
                raise
            time.sleep(min(1.0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")


def _is_locked(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc)
    return "database is locked" in message or "database is busy" in message
