"""The store's usage: which documents use which segments, when each was last used, and
which runs are in progress, so the cache can be bounded (``narrator cache prune``, the
size cap a run enforces at its end) without ever taking a segment from a live run.

A run notes all its keys in one transaction when it starts (not one write per segment),
and removes its ``runs`` row when it closes; a killed run's row names a dead process
(:func:`~.claims.alive`), so its segments are fair game at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..util.sanitize import storable
from .claims import alive
from .db import Backend
from .files import CacheFiles

__all__ = ["DocumentUsage", "PruneResult", "Usage"]


@dataclass(frozen=True, slots=True)
class DocumentUsage:
    """One document's share of the cache (``narrator cache info``)."""

    document: str
    segments: int
    bytes: int
    last_used: float


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune removed, and what it had to keep for runs in progress.

    ``ignored``: rows naming a file outside the cache; their rows are dropped, and the
    file they name is left alone."""

    removed: int
    freed: int
    kept_live: int
    remaining: int  # bytes of segment files left
    ignored: int = 0


class Usage:
    """The ``uses`` and ``runs`` tables, and the bounded cache they make possible."""

    def __init__(self, db: Backend, files: CacheFiles, owner: str) -> None:
        self._db = db
        self._files = files
        self.owner = owner
        # A database that is not a file in this cache (PostgreSQL) is shared by machines
        # whose files this cache does not hold.
        self._shared = db.path is None

    def note_run(self, keys: Mapping[str, Iterable[str]]) -> None:
        """This run is in progress and uses ``keys`` (by document): none of them is pruned
        until it closes, and each counts as used now. One transaction."""
        now = time.time()
        # The document is a label (``cache info``): a name that is not UTF-8 is kept escaped.
        rows = [
            (key, storable(doc), self.owner, now) for doc, ks in keys.items() for key in set(ks)
        ]

        def write() -> None:
            self._db.execute(
                "INSERT OR REPLACE INTO runs (owner, started) VALUES (?, ?)", (self.owner, now)
            )
            self._db.execute_many(
                "INSERT OR REPLACE INTO uses (key, document, owner, used) VALUES (?, ?, ?, ?)",
                rows,
            )

        self._db.transact(write)

    def end_run(self) -> None:
        self._db.write("DELETE FROM runs WHERE owner = ?", (self.owner,))

    def _live_owners(self) -> set[str]:
        owners = {row[0] for row in self._db.rows("SELECT owner FROM runs")}
        owners |= {row[0] for row in self._db.rows("SELECT owner FROM claims")}
        return {owner for owner in owners if isinstance(owner, str) and alive(owner)}

    def prune(
        self,
        *,
        max_bytes: int | None = None,
        older_than: float | None = None,
        forget: Callable[[str], None],
    ) -> PruneResult:
        """Delete segments, least recently used first: every one last used more than
        ``older_than`` seconds ago, then more until the segment files total ``max_bytes``.

        A segment used by a run in progress (a live ``runs`` row or a live claim on it) is
        never deleted, nor is any file a row names outside the cache (its rows are
        dropped). In a shared store, a row whose file is not in this cache is another
        machine's, and is left alone. ``forget(key)`` drops the segment's rows; the file
        goes first, so a crash in between leaves a row whose file is missing, which a
        lookup already treats as "synthesize again".
        """
        live = self._live_owners()
        claimed = {key for key, owner in self._db.rows("SELECT key, owner FROM claims")
                   if owner in live}  # fmt: skip
        rows = []
        total = ignored = 0
        for key, stored, last, owners in self._db.rows(
            "SELECT s.key, s.path, CASE WHEN MAX(u.used) > s.updated THEN MAX(u.used) "
            "ELSE s.updated END AS last, "
            "GROUP_CONCAT(u.owner, ' ') "
            "FROM segments s LEFT JOIN uses u ON u.key = s.key "
            "WHERE s.state = 'downloaded' AND s.path IS NOT NULL "
            "GROUP BY s.key ORDER BY last, s.key"
        ):
            path = self._files.row_path(key, stored)
            if path is None:
                ignored += 1
                forget(str(key))
                continue
            if self._shared and not os.path.lexists(path):
                continue  # a shared store's row of another machine's file: not ours to drop
            size = _size(path)
            total += size
            rows.append((key, path, last, owners, size))
        cutoff = time.time() - older_than if older_than is not None else None
        removed = freed = kept = 0
        for key, path, last, owners, size in rows:
            old = cutoff is not None and isinstance(last, (int, float)) and last < cutoff
            over = max_bytes is not None and total > max_bytes
            if not (old or over):
                if cutoff is None:
                    break  # least recently used first: the rest are all newer
                continue
            if key in claimed or live.intersection(str(owners or "").split()):
                kept += 1
                continue
            path.unlink(missing_ok=True)
            forget(key)
            total -= size
            freed += size
            removed += 1
        return PruneResult(removed, freed, kept, total, ignored)

    def by_document(self) -> list[DocumentUsage]:
        """Each document's segments still on disk, its bytes and when it was last used,
        the largest first. A segment shared by two documents counts in both; a row
        naming a file outside the cache counts nothing."""
        sizes: dict[str, int] = {}
        usage: dict[str, list[float]] = {}
        for document, key, stored, used in self._db.rows(
            "SELECT u.document, u.key, s.path, u.used FROM uses u JOIN segments s "
            "ON s.key = u.key WHERE s.state = 'downloaded' AND s.path IS NOT NULL"
        ):
            if not isinstance(used, (int, float)):
                continue
            if key not in sizes:
                path = self._files.row_path(key, stored)
                sizes[key] = 0 if path is None else _size(path)
            entry = usage.setdefault(str(document), [0, 0, 0.0])
            entry[0] += 1
            entry[1] += sizes[key]
            entry[2] = max(entry[2], used)
        result = [DocumentUsage(doc, int(n), int(b), last) for doc, (n, b, last) in usage.items()]
        return sorted(result, key=lambda u: (-u.bytes, u.document))


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0
