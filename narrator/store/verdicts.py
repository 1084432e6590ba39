"""The store's verdicts: the quality gate's judgment of each segment's audio."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "VERDICTS_SCHEMA",
    "StoredVerdict",
    "VerdictsMixin",
    "flagged",
    "from_columns",
    "learned_rates",
    "verdict",
    "verdict_row",
    "write_verdict",
]

# The quality gate's verdict on each segment's audio (see quality.py). ``status``:
# passed; provisional (passed while the run's speech rate was still the prior's guess);
# retrying (judged bad, synthesized again; ``best`` is the least bad attempt so far, its
# file set aside under segments/qa/); flagged (bad on every attempt, the best one kept).
# A pass also stores what it taught (``voice_key``, ``script``, ``rate``), so a later run
# starts from this voice's measured speech rate instead of the prior.
VERDICTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key         TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('passed','provisional','retrying','flagged')),
    attempts    INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    measurement TEXT NOT NULL,
    best        TEXT,
    voice_key   TEXT,
    script      TEXT,
    rate        REAL,
    updated     REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A verdict row: the gate's judgment of a segment, as JSON-ready dicts."""

    key: str
    status: str
    attempts: int
    verdict: dict[str, Any]
    measurement: dict[str, Any]
    best: dict[str, Any] | None


def verdict(db: sqlite3.Connection, key: str) -> StoredVerdict | None:
    """The quality gate's verdict on ``key``'s audio, if it was judged."""
    row = db.execute(
        "SELECT status, attempts, verdict, measurement, best FROM verdicts WHERE key = ?",
        (key,),
    ).fetchone()
    return None if row is None else from_columns(key, *row)


def from_columns(
    key: str, status: str, attempts: int, verdict: str, measurement: str, best: str | None
) -> StoredVerdict:
    """A verdict from its row's columns (JSON text)."""
    found = json.loads(best) if best else None
    return StoredVerdict(key, status, attempts, json.loads(verdict), json.loads(measurement), found)


def flagged(db: sqlite3.Connection, keys: list[str]) -> dict[str, StoredVerdict]:
    """The verdicts of those of ``keys`` that the quality gate flagged."""
    found: dict[str, StoredVerdict] = {}
    for start in range(0, len(keys), 500):  # SQLite caps the parameters of one query
        batch = keys[start : start + 500]
        rows = db.execute(
            "SELECT key, attempts, verdict, measurement FROM verdicts "
            f"WHERE status = 'flagged' AND key IN ({','.join('?' * len(batch))})",
            batch,
        )
        for key, attempts, found_verdict, measurement in rows:
            found[key] = StoredVerdict(
                key, "flagged", attempts, json.loads(found_verdict), json.loads(measurement), None
            )
    return found


def learned_rates(db: sqlite3.Connection, voice_key: str, limit: int) -> list[tuple[str, float]]:
    """(script, seconds per weight unit) of the latest passed segments of a voice, oldest
    first."""
    rows = db.execute(
        "SELECT script, rate FROM verdicts WHERE voice_key = ? AND status = 'passed' "
        "AND script IS NOT NULL ORDER BY updated DESC LIMIT ?",
        (voice_key, limit),
    ).fetchall()
    return [(str(script), float(rate)) for script, rate in reversed(rows)]


def verdict_row(
    key: str,
    status: str,
    attempts: int,
    verdict: dict[str, Any],
    measurement: dict[str, Any],
    best: dict[str, Any] | None,
    learned: tuple[str, str, float] | None,  # (voice_key, script, rate)
) -> tuple[object, ...]:
    """A verdict as the row :func:`write_verdict` writes."""
    voice_key, script, rate = learned or (None, None, None)
    return (
        key, status, attempts, json.dumps(verdict), json.dumps(measurement),
        json.dumps(best) if best is not None else None, voice_key, script, rate, time.time(),
    )  # fmt: skip


def write_verdict(db: sqlite3.Connection, row: tuple[object, ...]) -> None:
    db.execute(
        "INSERT OR REPLACE INTO verdicts (key, status, attempts, verdict, measurement, "
        "best, voice_key, script, rate, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


class VerdictsMixin:
    """The verdict methods of :class:`~.store.Store` (kept here, beside their SQL)."""

    _db: sqlite3.Connection
    _retry_locked: Callable[[Callable[[], Any]], Any]

    def verdict(self, key: str) -> StoredVerdict | None:
        """The quality gate's verdict on ``key``'s audio, if it was judged."""
        return verdict(self._db, key)

    def flagged(self, keys: list[str]) -> dict[str, StoredVerdict]:
        """The verdicts of those of ``keys`` that the quality gate flagged."""
        return flagged(self._db, keys)

    def learned_rates(self, voice_key: str, *, limit: int = 256) -> list[tuple[str, float]]:
        """(script, seconds per weight unit) of the latest passed segments of a voice, oldest
        first."""
        return learned_rates(self._db, voice_key, limit)

    def record_verdict(
        self,
        key: str,
        status: str,
        *,
        attempts: int,
        verdict: dict[str, Any],
        measurement: dict[str, Any],
        best: dict[str, Any] | None = None,
        learned: tuple[str, str, float] | None = None,  # (voice_key, script, rate)
    ) -> None:
        row = verdict_row(key, status, attempts, verdict, measurement, best, learned)
        self._retry_locked(lambda: write_verdict(self._db, row))
