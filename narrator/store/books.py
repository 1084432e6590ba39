"""The store's books: each audiobook written, and its files, so a rerun can tell an
up-to-date audiobook from a stale, edited or missing one."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BOOKS_SCHEMA", "BOOK_FILES_SCHEMA", "BookRecord", "current_book", "write_book"]

# One row per audiobook written: what it was made from, and the file as it was left,
# so a rerun can tell an up-to-date audiobook from a stale, edited or missing one.
BOOKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS books (
    output      TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    updated     REAL NOT NULL
)
"""
# The audio files of each book: one row, or one per part when --split-hours cut it.
# A book with rows here is checked file by file (its own name may not exist at all).
BOOK_FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS book_files (
    output   TEXT NOT NULL,
    number   INTEGER NOT NULL,
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (output, number)
)
"""


@dataclass(frozen=True, slots=True)
class BookRecord:
    """An audiobook as it was last written: its length and its audio files."""

    seconds: float
    files: tuple[Path, ...]


def current_book(db: sqlite3.Connection, output: Path, fingerprint: str) -> BookRecord | None:
    """What ``output`` was written as, if it was written from ``fingerprint`` and none
    of its files has changed on disk since; None when it must be made (again)."""
    name = str(output.absolute())
    row = db.execute(
        "SELECT fingerprint, size, mtime_ns, seconds FROM books WHERE output = ?", (name,)
    ).fetchone()
    if row is None or row[0] != fingerprint:
        return None
    files = db.execute(
        "SELECT path, size, mtime_ns FROM book_files WHERE output = ? ORDER BY number",
        (name,),
    ).fetchall()
    # A book recorded before parts were recorded is its own one file.
    expected = [(path, size, mtime) for path, size, mtime in files] or [(name, row[1], row[2])]
    for path, size, mtime in expected:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            return None
    return BookRecord(float(row[3]), tuple(Path(path) for path, _, _ in expected))


def write_book(
    db: sqlite3.Connection,
    name: str,
    fingerprint: str,
    seconds: float,
    files: Sequence[Path],
    stats: Sequence[os.stat_result],
) -> None:
    """Record book ``name`` and its files, in one transaction (the caller retries it)."""
    with db:  # the row and its files together, or neither
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR REPLACE INTO books (output, fingerprint, size, mtime_ns, seconds, "
            "updated) VALUES (?, ?, ?, ?, ?, ?)",
            (name, fingerprint, stats[0].st_size, stats[0].st_mtime_ns, seconds, time.time()),
        )
        db.execute("DELETE FROM book_files WHERE output = ?", (name,))
        db.executemany(
            "INSERT INTO book_files (output, number, path, size, mtime_ns) VALUES (?, ?, ?, ?, ?)",
            [
                (name, n, str(path.absolute()), st.st_size, st.st_mtime_ns)
                for n, (path, st) in enumerate(zip(files, stats, strict=True), start=1)
            ],
        )
