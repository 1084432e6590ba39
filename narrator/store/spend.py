"""What the store says was paid: billed characters over a window, and which keys are in.

Read-only queries on the segments table, on a connection of their own, so a watcher or
``narrator status`` can ask while another process narrates into the same store.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .db import Backend, open_database, store_exists

__all__ = ["billed_since", "paid_keys"]

# A segment in these states was answered by the service: its characters were billed.
_BILLED = "('synthesized', 'downloaded')"


# Billing characters summed, counting only a positive whole number (a negative one would
# lift the limit; SQLite lets a crafted row hold text), as a float so no sum overflows.
_BILLED_CHARS = {
    "sqlite": "TOTAL(CASE WHEN typeof(billing_chars) = 'integer' AND billing_chars > 0 "
    "THEN billing_chars ELSE 0 END)",
    "postgresql": "COALESCE(SUM(CASE WHEN billing_chars > 0 THEN billing_chars ELSE 0 END), 0)"
    "::DOUBLE PRECISION",
}


def _connect(store_dir: Path, url: str | None) -> Backend | None:
    if url is None and not store_exists(store_dir):  # nothing narrated yet: nothing paid
        return None
    db = open_database(store_dir, url, read_only=True)
    # A watcher's queue may have made the file before any segment was stored.
    if not db.has_table("segments"):
        db.close()
        return None
    return db


def billed_since(store_dir: Path, since: float, *, url: str | None = None) -> int:
    """Billing characters of the segments the service answered at or after ``since``
    (seconds since the epoch), in every process that used this store."""
    db = _connect(store_dir, url)
    if db is None:
        return 0
    try:
        row = db.row(
            f"SELECT {_BILLED_CHARS[db.dialect]} FROM segments WHERE state IN {_BILLED} "
            "AND updated >= ?",
            (since,),
        )
    finally:
        db.close()
    return int(min(row[0], 2**62)) if row is not None else 0


def paid_keys(store_dir: Path, keys: Iterable[str], *, url: str | None = None) -> set[str]:
    """Those of ``keys`` whose audio the store already has (or has a link to)."""
    db = _connect(store_dir, url)
    if db is None:
        return set()
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    try:
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            part = wanted[start : start + 500]
            marks = ", ".join("?" * len(part))
            found.update(
                str(key)
                for (key,) in db.rows(
                    f"SELECT key FROM segments WHERE state IN {_BILLED} AND key IN ({marks})",
                    part,
                )
            )
    finally:
        db.close()
    return found
