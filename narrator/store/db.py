"""The store's SQLite database: its schema, opening it, and writes retried while another
process holds the lock."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .books import BOOK_FILES_SCHEMA, BOOKS_SCHEMA
from .claims import CLAIMS_SCHEMA
from .usage import RUNS_SCHEMA, USES_SCHEMA
from .verdicts import VERDICTS_SCHEMA

__all__ = ["open_database", "retry_locked"]

T = TypeVar("T")

_SEGMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    key           TEXT PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('pending','synthesized','downloaded','failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    billing_chars INTEGER NOT NULL,
    url           TEXT,
    url_at        REAL,
    path          TEXT,
    frames        INTEGER,
    rate          INTEGER,
    channels      INTEGER,
    width         INTEGER,
    error         TEXT,
    updated       REAL NOT NULL
)
"""
# SQLite's own busy wait (the connection timeout) covers most contention; a write that
# still finds the database locked is tried again this many times before it is an error.
_LOCKED_RETRIES = 20


def open_database(path: Path) -> sqlite3.Connection:
    """The store's connection, its tables made; several processes may open one at once.

    It is used from the store's own thread (see thread.py), one caller at a time.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)

    def prepare() -> None:
        db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL survives a killed process; only a power cut can lose the last rows,
        # and then the files they point to are checked again anyway.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SEGMENTS_SCHEMA)
        db.execute(BOOKS_SCHEMA)
        db.execute(BOOK_FILES_SCHEMA)
        db.execute(CLAIMS_SCHEMA)
        db.execute(VERDICTS_SCHEMA)
        db.execute(USES_SCHEMA)
        db.execute(RUNS_SCHEMA)

    retry_locked(prepare)
    return db


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


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "database is locked" in message or "database is busy" in message
