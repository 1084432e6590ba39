"""The store's claims: which process is synthesizing which chunk, with an expiry.

Several processes may share one cache, and with a PostgreSQL store several machines
share one store; a process claims a key before it sends the request, and the others wait
for its audio. A claim lapses at ``expires`` (wall-clock seconds), and at once when its
process has died on this machine, so a killed process blocks no one; a claim of another
machine lapses only when it expires.

A claim is taken by one statement that inserts the row, or takes it over when it is this
owner's or has expired, and says whether it did (``RETURNING``): the database decides
between two processes claiming at once, whatever its isolation (SQLite's write lock,
PostgreSQL's row lock on the conflicting key). A row that still holds by its expiry but
names a dead process of this machine (or is of the wrong shape) is taken over only if it
is still that row (compare and set), so of two processes that saw it, one wins.
"""

from __future__ import annotations

import socket
import time

from ..util.atomic import running_here
from .db import Backend

__all__ = ["Claims", "alive"]


class Claims:
    """The ``claims`` table, as seen by one store (its ``owner``)."""

    def __init__(self, db: Backend, owner: str) -> None:
        self._db = db
        self.owner = owner

    def claim(self, key: str, seconds: float, *, billing_chars: int | None) -> bool:
        """Claim ``key`` for ``seconds`` (or renew this owner's claim); False when another
        process holds a claim on it that has not lapsed. One transaction. With
        ``billing_chars``, a claim made also inserts the chunk's ``segments`` row if it
        has none: one write per chunk where there were two."""

        def take() -> bool:
            now = time.time()
            until = now + seconds
            if not self._db.rows(_TAKE, (key, self.owner, until, now)):
                row = self._db.row("SELECT owner, expires FROM claims WHERE key = ?", (key,))
                if row is None or _lasts(row, now):
                    return False  # held (or let go just now: the next try takes it)
                taken = self._db.rows(
                    "UPDATE claims SET owner = ?, expires = ? "
                    "WHERE key = ? AND owner = ? AND expires = ? RETURNING owner",
                    (self.owner, until, key, row[0], row[1]),
                )
                if not taken:
                    return False  # another process took it over first
            if billing_chars is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO segments (key, state, billing_chars, updated) "
                    "VALUES (?, 'pending', ?, ?)",
                    (key, billing_chars, now),
                )
            return True

        return self._db.transact(take)

    def release(self, key: str) -> None:
        self._db.write("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))

    def release_all(self) -> None:
        self._db.write("DELETE FROM claims WHERE owner = ?", (self.owner,))


# Insert the claim, or take the row over when it is this owner's or has expired; a row
# comes back only when the claim is this owner's.
_TAKE = (
    "INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
    "SET owner = excluded.owner, expires = excluded.expires "
    "WHERE claims.owner = excluded.owner OR claims.expires <= ? RETURNING owner"
)


def _lasts(row: tuple[object, ...], now: float) -> bool:
    """Whether another owner's claim row still holds (a row of the wrong types does not)."""
    owner, expires = row
    if not isinstance(owner, str) or not isinstance(expires, (int, float)):
        return False
    return expires > now and alive(owner)


def alive(owner: str) -> bool:
    """Whether the process named in a claim may still be working on it."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not (pid.isascii() and pid.isdigit()):
        return True  # another machine on a shared disk: only the expiry tells
    return int(pid) < 2**31 and running_here(int(pid))  # no process has a larger id
