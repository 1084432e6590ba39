"""A watcher's queue in the store: one row per inbox document, for ``narrator status``.

A table of its own in the same database, written on a short-lived connection of its
own: several watchers and a ``narrator status`` in another terminal share it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QueueRow", "read_queue", "record"]

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_queue (
    input   TEXT PRIMARY KEY,
    output  TEXT NOT NULL,
    state   TEXT NOT NULL,
    detail  TEXT NOT NULL,
    keys    TEXT NOT NULL,
    updated REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One document of an inbox: its state (``waiting``, ``waiting for budget``,
    ``in progress``, or how its run ended), why, and its chunks' segment keys."""

    input: str
    output: str
    state: str
    detail: str = ""
    keys: tuple[str, ...] = ()
    updated: float = 0.0


def _connect(store_dir: Path) -> sqlite3.Connection:
    store_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(store_dir / "narrator.sqlite3", timeout=30, isolation_level=None)
    db.execute(QUEUE_SCHEMA)
    return db


def record(store_dir: Path, rows: Sequence[QueueRow]) -> None:
    """Write (or replace) the rows of these documents."""
    if not rows:
        return
    db = _connect(store_dir)
    try:
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO watch_queue VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.input, r.output, r.state, r.detail, json.dumps(r.keys), time.time())
                    for r in rows
                ],
            )
    finally:
        db.close()


def read_queue(store_dir: Path) -> list[QueueRow]:
    """Every row, oldest change first; none when nothing was ever watched."""
    if not (store_dir / "narrator.sqlite3").exists():
        return []
    db = _connect(store_dir)
    try:
        rows = db.execute(
            "SELECT input, output, state, detail, keys, updated FROM watch_queue "
            "ORDER BY updated, input"
        ).fetchall()
    finally:
        db.close()
    return [QueueRow(i, o, s, d, tuple(json.loads(k)), u) for i, o, s, d, k, u in rows]
