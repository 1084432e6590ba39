"""The store's usage: which documents use which segments, when each was last used, and
which runs are in progress, so the cache can be bounded (``narrator cache prune``, the
size cap a run enforces at its end) without ever taking a segment from a live run.

A run notes all its keys in one transaction when it starts (not one write per segment),
and removes its ``runs`` row when it closes; a killed run's row names a dead process
(:func:`~.claims.alive`), so its segments are fair game at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .claims import alive

__all__ = [
    "RUNS_SCHEMA",
    "USES_SCHEMA",
    "DocumentUsage",
    "PruneResult",
    "UsageMixin",
    "by_document",
    "end_run",
    "note_run",
    "prune",
]

# One row per (segment, document that uses it): the time it was last used, and the run.
USES_SCHEMA = """
CREATE TABLE IF NOT EXISTS uses (
    key      TEXT NOT NULL,
    document TEXT NOT NULL,
    owner    TEXT NOT NULL,
    used     REAL NOT NULL,
    PRIMARY KEY (key, document)
)
"""
RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    owner   TEXT PRIMARY KEY,
    started REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class DocumentUsage:
    """One document's share of the cache (``narrator cache info``)."""

    document: str
    segments: int
    bytes: int
    last_used: float


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune removed, and what it had to keep for runs in progress."""

    removed: int
    freed: int
    kept_live: int
    remaining: int  # bytes of segment files left


def note_run(db: sqlite3.Connection, owner: str, keys: Mapping[str, Iterable[str]]) -> None:
    """Record that ``owner``'s run uses ``keys`` (by document), now; one transaction."""
    now = time.time()
    rows = [(key, document, owner, now) for document, ks in keys.items() for key in set(ks)]
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO runs (owner, started) VALUES (?, ?)", (owner, now))
        db.executemany(
            "INSERT OR REPLACE INTO uses (key, document, owner, used) VALUES (?, ?, ?, ?)", rows
        )


def end_run(db: sqlite3.Connection, owner: str) -> None:
    db.execute("DELETE FROM runs WHERE owner = ?", (owner,))


def _live_owners(db: sqlite3.Connection) -> set[str]:
    owners = {row[0] for row in db.execute("SELECT owner FROM runs")}
    owners |= {row[0] for row in db.execute("SELECT owner FROM claims")}
    return {owner for owner in owners if alive(owner)}


def _segments(db: sqlite3.Connection) -> list[tuple[str, str, float, str | None]]:
    """(key, path, last used, a live-run marker source) of every downloaded segment,
    least recently used first."""
    return [
        (row[0], row[1], row[2], row[3])
        for row in db.execute(
            "SELECT s.key, s.path, MAX(COALESCE(MAX(u.used), 0), s.updated) AS last, "
            "GROUP_CONCAT(u.owner, ' ') "
            "FROM segments s LEFT JOIN uses u ON u.key = s.key "
            "WHERE s.state = 'downloaded' AND s.path IS NOT NULL "
            "GROUP BY s.key ORDER BY last, s.key"
        )
    ]


def prune(
    db: sqlite3.Connection,
    root: Path,
    *,
    max_bytes: int | None = None,
    older_than: float | None = None,
    forget: Callable[[str], None],
) -> PruneResult:
    """Delete segments, least recently used first: every one last used more than
    ``older_than`` seconds ago, then more until the segment files total ``max_bytes``.

    A segment used by a run in progress (a live ``runs`` row or a live claim on it) is
    never deleted. ``forget(key)`` drops the segment's rows; the file goes first, so a
    crash in between leaves a row whose file is missing, which a lookup already treats
    as "synthesize again".
    """
    live = _live_owners(db)
    claimed = {row[0] for row in db.execute("SELECT key, owner FROM claims") if row[1] in live}
    rows = []
    total = 0
    for key, rel, last, owners in _segments(db):
        try:
            size = (root / rel).stat().st_size
        except OSError:
            size = 0
        total += size
        rows.append((key, rel, last, owners, size))
    cutoff = time.time() - older_than if older_than is not None else None
    removed = freed = kept = 0
    for key, rel, last, owners, size in rows:
        old = cutoff is not None and last < cutoff
        over = max_bytes is not None and total > max_bytes
        if not (old or over):
            if cutoff is None:
                break  # least recently used first: the rest are all newer
            continue
        if key in claimed or live.intersection((owners or "").split()):
            kept += 1
            continue
        (root / rel).unlink(missing_ok=True)
        forget(key)
        total -= size
        freed += size
        removed += 1
    return PruneResult(removed, freed, kept, total)


def by_document(db: sqlite3.Connection, root: Path) -> list[DocumentUsage]:
    """Each document's segments still on disk, its bytes and when it was last used,
    the largest first. A segment shared by two documents counts in both."""
    sizes: dict[str, int] = {}
    usage: dict[str, list[float]] = {}
    for document, key, rel, used in db.execute(
        "SELECT u.document, u.key, s.path, u.used FROM uses u "
        "JOIN segments s ON s.key = u.key WHERE s.state = 'downloaded' AND s.path IS NOT NULL"
    ):
        if key not in sizes:
            try:
                sizes[key] = (root / rel).stat().st_size
            except OSError:
                sizes[key] = 0
        entry = usage.setdefault(document, [0, 0, 0.0])
        entry[0] += 1
        entry[1] += sizes[key]
        entry[2] = max(entry[2], used)
    result = [DocumentUsage(doc, int(n), int(b), last) for doc, (n, b, last) in usage.items()]
    return sorted(result, key=lambda u: (-u.bytes, u.document))


def _forget(db: sqlite3.Connection, key: str) -> None:
    with db:
        db.execute("BEGIN IMMEDIATE")
        for table in ("segments", "verdicts", "uses"):
            db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))


class UsageMixin:
    """The bounded cache's methods of :class:`~.store.Store` (kept here, beside their SQL)."""

    _db: sqlite3.Connection
    root: Path
    owner: str
    _retry_locked: Callable[[Callable[[], Any]], Any]

    def note_run(self, keys: dict[str, list[str]]) -> None:
        """This run is in progress and uses ``keys`` (by document): none of them is pruned
        until it closes, and each counts as used now."""
        self._retry_locked(lambda: note_run(self._db, self.owner, keys))

    def usage(self) -> list[DocumentUsage]:
        """Each document's segments and bytes, the largest first."""
        return by_document(self._db, self.root)

    def prune(
        self, *, max_bytes: int | None = None, older_than: float | None = None
    ) -> PruneResult:
        """Delete segments least recently used first; never one a live run uses."""

        def forget(key: str) -> None:
            self._retry_locked(lambda: _forget(self._db, key))

        return prune(self._db, self.root, max_bytes=max_bytes, older_than=older_than, forget=forget)
