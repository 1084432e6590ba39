"""The store's verdicts: the quality gate's judgment of each segment's audio.

A verdict row is data: one whose JSON does not read as a verdict (or whose numbers are
not numbers) is as if the segment were never judged, and is judged again (free).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .db import Backend

__all__ = ["MEASUREMENT_FIELDS", "VERDICT_FIELDS", "StoredVerdict", "Verdicts", "from_columns"]

_NUMBER = (int, float)
# What a verdict's JSON holds: the fields of synth.quality.Verdict and of
# synth.measure.Measurement (tests/test_store_hostile.py keeps these in step).
VERDICT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "reason": str, "measured": _NUMBER, "expected": _NUMBER, "low": _NUMBER,
    "high": _NUMBER, "provisional": bool, "badness": _NUMBER,
}  # fmt: skip
MEASUREMENT_FIELDS: dict[str, type | tuple[type, ...]] = dict.fromkeys(
    ("seconds", "peak_dbfs", "voiced", "lead", "span", "tail", "pause", "noise"), _NUMBER
)


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A verdict row: the gate's judgment of a segment, as JSON-ready dicts."""

    key: str
    status: str
    attempts: int
    verdict: dict[str, Any]
    measurement: dict[str, Any]
    best: dict[str, Any] | None


def from_columns(
    key: str, status: object, attempts: object, verdict: object, measurement: object, best: object
) -> StoredVerdict | None:
    """A verdict from its row's columns (JSON text); None if they do not read as one."""
    try:
        found = [json.loads(text) if isinstance(text, str) else None for text in
                 (verdict, measurement, best)]  # fmt: skip
    except (ValueError, RecursionError):
        return None
    judged, measured, kept = found
    if not (isinstance(status, str) and isinstance(attempts, int) and 0 <= attempts < 2**31):
        return None
    if not (isinstance(judged, dict) and isinstance(measured, dict)):
        return None
    # Empty: marked by ``check --fix`` for a retake (status retrying), judged afresh.
    marked = status == "retrying" and judged == {} and measured == {}
    whole = _shaped(judged, VERDICT_FIELDS) and _shaped(measured, MEASUREMENT_FIELDS)
    if not (marked or whole):
        return None
    if not (
        isinstance(kept, dict)
        and _shaped(kept.get("verdict"), VERDICT_FIELDS)
        and _shaped(kept.get("measurement"), MEASUREMENT_FIELDS)
    ):
        kept = None  # no best attempt to go back to: the retakes start afresh
    return StoredVerdict(key, status, attempts, judged, measured, kept)


def _shaped(found: object, fields: dict[str, type | tuple[type, ...]]) -> bool:
    """Whether ``found`` is a dict of exactly ``fields``, each of its type."""
    return (
        isinstance(found, dict)
        and found.keys() == fields.keys()
        and all(isinstance(found[name], kind) for name, kind in fields.items())
    )


class Verdicts:
    """The ``verdicts`` table."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    def get(self, key: str) -> StoredVerdict | None:
        """The quality gate's verdict on ``key``'s audio, if it was judged."""
        row = self._db.row(
            "SELECT status, attempts, verdict, measurement, best FROM verdicts WHERE key = ?",
            (key,),
        )
        return None if row is None else from_columns(key, *row)

    def flagged(self, keys: list[str]) -> dict[str, StoredVerdict]:
        """The verdicts of those of ``keys`` that the quality gate flagged."""
        found: dict[str, StoredVerdict] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the parameters of one query
            batch = keys[start : start + 500]
            rows = self._db.rows(
                "SELECT key, attempts, verdict, measurement FROM verdicts "
                f"WHERE status = 'flagged' AND key IN ({','.join('?' * len(batch))})",
                batch,
            )
            for key, attempts, judged, measurement in rows:
                stored = from_columns(key, "flagged", attempts, judged, measurement, None)
                if stored is not None:
                    found[key] = stored
        return found

    def learned_rates(self, voice_key: str, limit: int) -> list[tuple[str, float]]:
        """(script, seconds per weight unit) of the latest passed segments of a voice,
        oldest first."""
        rows = self._db.rows(
            "SELECT script, rate FROM verdicts WHERE voice_key = ? AND status = 'passed' "
            "AND script IS NOT NULL ORDER BY updated DESC LIMIT ?",
            (voice_key, limit),
        )
        return [
            (script, float(rate))
            for script, rate in reversed(rows)
            if isinstance(script, str) and isinstance(rate, (int, float)) and 0 < rate < 1e6
        ]

    def record(
        self,
        key: str,
        status: str,
        *,
        attempts: int,
        verdict: dict[str, Any],
        measurement: dict[str, Any],
        best: dict[str, Any] | None,
        learned: tuple[str, str, float] | None,  # (voice_key, script, rate)
    ) -> None:
        voice_key, script, rate = learned or (None, None, None)
        self._db.write(
            "INSERT OR REPLACE INTO verdicts (key, status, attempts, verdict, measurement, "
            "best, voice_key, script, rate, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key, status, attempts, json.dumps(verdict), json.dumps(measurement),
                json.dumps(best) if best is not None else None, voice_key, script, rate,
                time.time(),
            ),
        )  # fmt: skip
