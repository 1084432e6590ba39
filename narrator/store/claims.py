"""The store's claims: which process is synthesizing which chunk, with an expiry.

Several processes may share one cache; a process claims a key before it sends the
request, and the others wait for its audio. A claim lapses at ``expires`` (wall-clock
seconds), and at once when its process has died on this machine, so a killed process
blocks no one.
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
            row = self._db.row("SELECT owner, expires FROM claims WHERE key = ?", (key,))
            if row is not None and row[0] != self.owner and _lasts(row, now):
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO claims (key, owner, expires) VALUES (?, ?, ?)",
                (key, self.owner, now + seconds),
            )
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
