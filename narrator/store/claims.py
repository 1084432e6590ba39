"""The store's claims: which process is synthesizing which chunk, with an expiry.

Several processes may share one cache; a process claims a key before it sends the
request, and the others wait for its audio. A claim lapses at ``expires`` (wall-clock
seconds), and at once when its process has died on this machine, so a killed process
blocks no one.
"""

from __future__ import annotations

import socket
import sqlite3
import time

from ..util.atomic import running_here

__all__ = ["CLAIMS_SCHEMA", "alive", "try_claim"]

CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
)
"""


def try_claim(
    db: sqlite3.Connection, key: str, owner: str, seconds: float, *, billing_chars: int | None
) -> bool:
    """Claim ``key`` for ``owner`` for ``seconds`` (or renew its claim); False when another
    process holds a claim on it that has not lapsed. One transaction; the caller retries
    it while the database is locked. With ``billing_chars``, a claim made also inserts the
    chunk's ``segments`` row if it has none: one write per chunk where there were two."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        now = time.time()
        row = db.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
        if row is not None and row[0] != owner and row[1] > now and alive(row[0]):
            return False
        db.execute(
            "INSERT OR REPLACE INTO claims (key, owner, expires) VALUES (?, ?, ?)",
            (key, owner, now + seconds),
        )
        if billing_chars is not None:
            db.execute(
                "INSERT OR IGNORE INTO segments (key, state, billing_chars, updated) "
                "VALUES (?, 'pending', ?, ?)",
                (key, billing_chars, now),
            )
        return True


def alive(owner: str) -> bool:
    """Whether the process named in a claim may still be working on it."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine on a shared disk: only the expiry tells
    return running_here(int(pid))
