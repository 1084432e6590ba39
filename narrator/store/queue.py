"""A watcher's queue in the store: one row per inbox document, for ``narrator status``.

A table of its own in the same database, written on a short-lived connection of its
own: several watchers and a ``narrator status`` in another terminal share it. A row
that does not read as one (a crafted store) is left out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .db import open_database, store_exists

__all__ = ["QueueRow", "read_queue", "record"]


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


def record(store_dir: Path, rows: Sequence[QueueRow], *, url: str | None = None) -> None:
    """Write (or replace) the rows of these documents (in the PostgreSQL store at
    ``url``, when there is one)."""
    if not rows:
        return
    if url is None:
        store_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(store_dir, url)
    try:
        db.write_many(
            "INSERT OR REPLACE INTO watch_queue (input, output, state, detail, keys, updated) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.input, r.output, r.state, r.detail, json.dumps(r.keys), time.time()) for r in rows],
        )
    finally:
        db.close()


def read_queue(store_dir: Path, *, url: str | None = None) -> list[QueueRow]:
    """Every row, oldest change first; none when nothing was ever watched."""
    if url is None and not store_exists(store_dir):
        return []
    db = open_database(store_dir, url, read_only=True)
    try:
        if not db.has_table("watch_queue"):
            return []
        rows = db.rows(
            "SELECT input, output, state, detail, keys, updated FROM watch_queue "
            "ORDER BY updated, input"
        )
    finally:
        db.close()
    return [row for fields in rows if (row := _row(*fields)) is not None]


def _row(*fields: object) -> QueueRow | None:
    """A queue row from its columns, if they read as one."""
    *texts, keys, updated = fields
    try:
        found = json.loads(keys) if isinstance(keys, str) else None
    except (ValueError, RecursionError):
        found = None
    if not all(isinstance(t, str) for t in texts) or not isinstance(updated, (int, float)):
        return None
    if not isinstance(found, list) or not all(isinstance(k, str) for k in found):
        return None
    input_, output, state, detail = (str(t) for t in texts)
    return QueueRow(input_, output, state, detail, tuple(found), float(updated))
