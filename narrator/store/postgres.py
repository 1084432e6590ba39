"""The store's database on PostgreSQL: one store shared by narrator on several machines.

``Store(root, url="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")`` keeps the store's
tables (segments, claims, books, verdicts, uses, runs, the watchers' queue) here instead
of in the cache folder's SQLite file; the folder still holds the segments' audio files. Pick a
schema of its own with libpq's ``options``: ``...?options=-csearch_path%3Dnarrator`` (the
schema must exist). psycopg is imported only when such a URL is used.

This is the second implementation of :class:`~.db.Backend`. The repositories write their
SQL once, in SQLite's dialect; :func:`~.dialect.translate` rewrites the few words where PostgreSQL
differs (placeholders, ``INSERT OR IGNORE``/``OR REPLACE``, ``GROUP_CONCAT``), and where a
query cannot be rewritten that simply the repository asks :attr:`dialect`.

The database is data, never authority, as the SQLite file is: before a row is read, the
schema must be narrator's (a ``narrator_meta`` table stamped with narrator's application
id, nothing but narrator's tables, no views, no triggers, every column this version uses)
and not newer than this version reads; anything else is refused in one line
(:class:`~narrator.errors.StoreRefused`) before anything is sent or paid for. Two
processes making the tables at once take turns (an advisory lock).

PostgreSQL out of reach (refused, reset, restarting): every call waits and tries again
on a new connection, for as long as it takes, logging "waiting for PostgreSQL at
HOST:PORT" once per outage and a line when it is back; a transaction is run again from
its start. So no write is lost: a link paid for while the server was away is recorded
when it returns. Only a stopping run stops waiting (:meth:`PostgresDatabase.give_up`, after
the stop's grace): each call then raises :class:`~narrator.errors.StoreAway` at once while
the server is away (a paid link goes to the cache folder's reserve instead, see
``Store.record_link``), so a stopped worker ends however long the outage lasts. A server
that answers "no" (a wrong password, no such database) is an
error at once, in one line. The URL's password is never shown (:func:`~narrator.util.
sanitize.masked_url`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConfigError, StoreAway, StoreFailed, StoreRefused
from ..util.sanitize import clean_line, masked_url
from .db import expected_columns
from .dialect import as_parameters, tables, translate
from .schema import APPLICATION_ID, SCHEMA_VERSION, TABLES

__all__ = ["META_TABLE", "PostgresDatabase", "translate"]  # translate: see .dialect

T = TypeVar("T")
log = logging.getLogger("narrator")

# Where the stamp lives: (name, value) rows 'application_id' and 'schema_version'.
META_TABLE = "narrator_meta"
_META = f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"
# How long one connection attempt may take, and the pauses between attempts in an outage.
CONNECT_TIMEOUT = 5
_FIRST_PAUSE, _LONGEST_PAUSE = 0.05, 1.0
# A server that answers FATAL with these is away for a while, not refusing us.
_AWAY = ("starting up", "shutting down", "recovery mode", "not yet accepting", "too many clients",
         "administrator command", "terminating connection")  # fmt: skip


# --- outages: logged once per server and outage, by every connection of the process ---

_outages: set[str] = set()
_outages_lock = threading.Lock()


def _note_outage(where: str, exc: BaseException) -> None:
    with _outages_lock:
        if where in _outages:
            return
        _outages.add(where)
    log.warning("waiting for PostgreSQL at %s (%s)", where, clean_line(_reason(exc), limit=120))


def _note_back(where: str) -> None:
    with _outages_lock:
        if where not in _outages:
            return
        _outages.discard(where)
    log.warning("PostgreSQL at %s is back", where)


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _away(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the server is out of reach for now (not that it refused us)."""
    if isinstance(exc, psycopg.errors.TransactionRollback):
        return False  # a conflict between transactions: run again at once, no outage
    if exc.sqlstate is not None:
        return exc.sqlstate.startswith(("08", "57P")) or exc.sqlstate == "53300"
    message = str(exc)
    return "FATAL" not in message or any(phrase in message for phrase in _AWAY)


class PostgresDatabase:
    """One connection to a PostgreSQL store, checked to be narrator's; it reconnects
    (and waits) whenever the server is out of reach.

    ``read_only``: for ``narrator status`` and a watcher's spending checks: makes no
    tables and stamps nothing; a table not there yet reads as empty.
    """

    dialect = "postgresql"
    path = None  # no file: ``cache info`` counts the segment files only

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self.shown = masked_url(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(f"the store URL {self.shown} does not parse: {_reason(exc)}") from exc
        host = str(params.get("host") or "localhost")
        self.where = f"{host}:{params.get('port') or 5432}"
        self._conn: psycopg.Connection[Any] | None = None
        self._in_transaction = False
        self._give_up = threading.Event()  # a stopping run waits no longer
        self._away = False  # the last call met an outage
        self._not_made = 0  # calls not made since give_up(), the server being away
        self.schema = ""
        try:
            self._retrying(self._prepare, transaction=True)
        except BaseException:
            self._drop()
            raise

    # --- connecting ----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="narrator",
                # A server that vanished without closing is noticed in about 20 s.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=3,
                keepalives_count=3,
            )
        except psycopg.OperationalError as exc:
            if _away(exc):
                raise
            raise ConfigError(
                f"PostgreSQL at {self.where} refused the store ({self.shown}): "
                f"{clean_line(_reason(exc).removeprefix('connection failed: '), limit=160)}"
            ) from exc
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass  # already broken: nothing to close cleanly
            self._conn = None

    def _retrying(
        self, work: Callable[[psycopg.Connection[Any]], T], *, transaction: bool = False
    ) -> T:
        """``work(connection)``, again (on a new connection) until the server answers; in
        one transaction when ``transaction``, run again from its start after a conflict."""
        pause = _FIRST_PAUSE
        while True:
            if self._away and self._give_up.is_set():
                self._not_made += 1
                raise StoreAway(f"PostgreSQL at {self.where} is out of reach; not waited for")
            try:
                conn = self._connect()
                if not transaction:
                    result = work(conn)
                else:
                    with conn.transaction():
                        self._in_transaction = True
                        try:
                            result = work(conn)
                        finally:
                            self._in_transaction = False
            except psycopg.errors.TransactionRollback:
                continue  # serialization failure or deadlock: the whole again
            except psycopg.OperationalError as exc:
                if not (_away(exc) or self._conn is None or self._conn.broken):
                    raise StoreFailed(f"PostgreSQL at {self.where}: {_reason(exc)}") from exc
                self._drop()
                _note_outage(self.where, exc)
                self._away = True
                self._give_up.wait(pause)  # woken by give_up(): then tried once more
                pause = min(_LONGEST_PAUSE, pause * 2)
                continue
            except psycopg.Error as exc:
                raise StoreFailed(f"PostgreSQL at {self.where}: {_reason(exc)}") from exc
            self._away = False
            _note_back(self.where)
            return result

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` now: inside a transaction its errors go to :meth:`transact` (which runs
        the whole again); outside, on its own, retried."""
        if self._in_transaction:
            assert self._conn is not None
            return work(self._conn)
        return self._retrying(work)

    # --- checking and making the tables --------------------------------------------------

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        schema = conn.execute("SELECT current_schema()").fetchone()
        if schema is None or schema[0] is None:
            path = conn.execute("SHOW search_path").fetchone()
            raise self._refused(
                f"has no schema to use (search_path {path[0] if path else '?'}): create it, "
                "or name one that exists"
            )
        self.schema = str(schema[0])
        if not self.read_only:
            # Two processes making the tables at once would collide on the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))
        self._check(conn)
        if self.read_only:
            return
        conn.execute(_META)
        for statement in tables():
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {META_TABLE} (name, value) VALUES ('application_id', %s), "
            "('schema_version', %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value "
            f"WHERE {META_TABLE}.name = 'schema_version' AND {META_TABLE}.value < EXCLUDED.value",
            (APPLICATION_ID, SCHEMA_VERSION),
        )

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse a schema that is not narrator's or is newer than this version."""
        objects = conn.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()
        names = {str(name) for name, _ in objects}
        for name, kind in objects:
            if kind != "BASE TABLE":
                raise self._refused(f"is not narrator's: it has the view {name!r}")
            if name not in TABLES and name != META_TABLE:
                raise self._refused(f"is not narrator's: it has the table {name!r}")
        triggers = conn.execute(
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = current_schema() ORDER BY trigger_name"
        ).fetchall()
        if triggers:
            raise self._refused(f"is not narrator's: it has the trigger {triggers[0][0]!r}")
        if not names:
            return  # a new, empty schema: made below
        if META_TABLE not in names:
            raise self._refused(f"is not narrator's: it has tables but no {META_TABLE}")
        stamp = dict(conn.execute(f"SELECT name, value FROM {META_TABLE}").fetchall())
        if stamp.get("application_id") != APPLICATION_ID:
            found = stamp.get("application_id")
            shown = f"{found:#x}" if isinstance(found, int) else "none"
            raise self._refused(f"is another program's database (application id {shown})")
        version = stamp.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise self._refused(
                f"was made by a newer narrator (schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}): upgrade narrator, or use another database or schema"
            )
        columns: dict[str, set[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ).fetchall():
            columns.setdefault(str(table), set()).add(str(column))
        for name, expected in expected_columns().items():
            if name in columns and (missing := expected - columns[name]):
                lacks = ", ".join(sorted(missing))
                raise self._refused(f"is not narrator's: its table {name} lacks {lacks}")

    def _refused(self, why: str) -> StoreRefused:
        where = f"{self.shown} (schema {self.schema})" if self.schema else self.shown
        return StoreRefused(
            f"the PostgreSQL store {where} {why}; it was left as it is "
            "(use another database or schema)"
        )

    def has_table(self, name: str) -> bool:
        return self._run(
            lambda conn: (
                conn.execute(
                    "SELECT 1 FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_name = %s",
                    (name,),
                ).fetchone()
                is not None
            )
        )

    # --- statements ----------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` reads."""
        query, values = translate(sql), as_parameters(params)
        return self._run(lambda conn: conn.execute(query, values).fetchall())

    def row(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """The first row ``sql`` reads, if any."""
        query, values = translate(sql), as_parameters(params)
        return self._run(lambda conn: conn.execute(query, values).fetchone())

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """One statement inside :meth:`transact` (which runs the whole again)."""
        query, values = translate(sql), as_parameters(params)
        self._run(lambda conn: conn.execute(query, values))

    def execute_many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        query, rows = translate(sql), [as_parameters(p) for p in params]

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(query, rows)

        if rows:
            self._run(run)

    def write(self, sql: str, params: Sequence[object] = ()) -> None:
        """One statement that changes rows, run again until the server has it."""
        self.execute(sql, params)

    def write_many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        rows = list(params)
        if rows:
            self.transact(lambda: self.execute_many(sql, rows))

    def transact(self, work: Callable[[], T]) -> T:
        """``work`` in one transaction, all of it or none, run again from its start after
        a conflict or on a new connection after an outage."""
        if self._in_transaction:
            return work()
        return self._retrying(lambda conn: work(), transaction=True)

    def vacuum(self) -> None:
        """Nothing: the server's autovacuum gives the room back, without a lock on a
        store other machines are using."""

    def give_up(self) -> None:
        """From any thread (a run stopping): wait out no outage any more; a call while the
        server is away raises :class:`~narrator.errors.StoreAway`."""
        self._give_up.set()

    def given_up(self) -> str | None:
        """Where, if calls were not made because the server was away after :meth:`give_up`."""
        return f"PostgreSQL at {self.where}" if self._not_made else None

    def close(self) -> None:
        self._drop()
