"""The store's books: each audiobook written, and its files, so a rerun can tell an
up-to-date audiobook from a stale, edited or missing one.

A book's rows name files outside the cache (the audiobook and its parts), so they are
only ever looked at (``stat``), and only beside the output they were recorded for: a row
naming a file elsewhere makes the book "not up to date", and it is made again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .db import Backend

__all__ = ["BookRecord", "Books"]


@dataclass(frozen=True, slots=True)
class BookRecord:
    """An audiobook as it was last written: its length and its audio files."""

    seconds: float
    files: tuple[Path, ...]


class Books:
    """The ``books`` and ``book_files`` tables."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    def current(self, output: Path, fingerprint: str) -> BookRecord | None:
        """What ``output`` was written as, if it was written from ``fingerprint`` and none
        of its files has changed on disk since; None when it must be made (again)."""
        name = _column(str(output.absolute()))
        row = self._db.row(
            "SELECT fingerprint, size, mtime_ns, seconds FROM books WHERE output = ?", (name,)
        )
        if row is None or row[0] != fingerprint or not isinstance(row[3], (int, float)):
            return None
        files = self._db.rows(
            "SELECT path, size, mtime_ns FROM book_files WHERE output = ? ORDER BY number",
            (name,),
        )
        # A book recorded before parts were recorded is its own one file.
        expected = [(path, size, mtime) for path, size, mtime in files] or [(name, row[1], row[2])]
        folder = output.absolute().parent
        paths = []
        for stored, size, mtime in expected:
            if not isinstance(stored, (str, bytes)):
                return None
            path = os.fsdecode(stored)
            if "\0" in path or Path(path).parent != folder:
                return None  # parts sit beside their output; a row naming elsewhere is not one
            try:
                stat = Path(path).stat()
            except OSError:
                return None
            if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
                return None
            paths.append(Path(path))
        return BookRecord(float(row[3]), tuple(paths))

    def record(
        self,
        output: Path,
        fingerprint: str,
        seconds: float,
        files: Sequence[Path],
        stats: Sequence[os.stat_result],
    ) -> None:
        """Record book ``output`` and its files, in one transaction."""
        name = _column(str(output.absolute()))

        def write() -> None:  # the row and its files together, or neither
            self._db.execute(
                "INSERT OR REPLACE INTO books (output, fingerprint, size, mtime_ns, seconds, "
                "updated) VALUES (?, ?, ?, ?, ?, ?)",
                (name, fingerprint, stats[0].st_size, stats[0].st_mtime_ns, seconds, time.time()),
            )
            self._db.execute("DELETE FROM book_files WHERE output = ?", (name,))
            self._db.execute_many(
                "INSERT INTO book_files (output, number, path, size, mtime_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (name, n, _column(str(path.absolute())), st.st_size, st.st_mtime_ns)
                    for n, (path, st) in enumerate(zip(files, stats, strict=True), start=1)
                ],
            )

        self._db.transact(write)


def _column(path: str) -> str | bytes:
    """``path`` as the database holds it: text, or its bytes when its name is not UTF-8
    (SQLite text must be; the bytes come back as the same path through os.fsdecode)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path
