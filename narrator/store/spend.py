"""What the store says was paid: billed characters over a window, and which keys are in.

Read-only queries on the segments table, on a connection of their own, so a watcher or
``narrator status`` can ask while another process narrates into the same store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

__all__ = ["billed_since", "paid_keys"]

# A segment in these states was answered by the service: its characters were billed.
_BILLED = "('synthesized', 'downloaded')"


def _connect(store_dir: Path) -> sqlite3.Connection | None:
    path = store_dir / "narrator.sqlite3"
    if not path.exists():  # nothing narrated yet: nothing paid
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    # A watcher's queue may have made the file before any segment was stored.
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'segments'").fetchone() is None:
        db.close()
        return None
    return db


def billed_since(store_dir: Path, since: float) -> int:
    """Billing characters of the segments the service answered at or after ``since``
    (seconds since the epoch), in every process that used this store."""
    db = _connect(store_dir)
    if db is None:
        return 0
    try:
        row = db.execute(
            f"SELECT COALESCE(SUM(billing_chars), 0) FROM segments "
            f"WHERE state IN {_BILLED} AND updated >= ?",
            (since,),
        ).fetchone()
    finally:
        db.close()
    return int(row[0])


def paid_keys(store_dir: Path, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` whose audio the store already has (or has a link to)."""
    db = _connect(store_dir)
    if db is None:
        return set()
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    try:
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            part = wanted[start : start + 500]
            marks = ", ".join("?" * len(part))
            found.update(
                key
                for (key,) in db.execute(
                    f"SELECT key FROM segments WHERE state IN {_BILLED} AND key IN ({marks})",
                    part,
                )
            )
    finally:
        db.close()
    return found
