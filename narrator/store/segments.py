"""The store's segments: one row per chunk's audio, and the checks a row passes before
its file is used.

States: ``pending`` (known, nothing usable yet), ``synthesized`` (the service made it;
its link is kept so a crash before the download bills nothing twice), ``downloaded``
(the file is in place), ``failed`` (the last try failed; retried on the next run).

With an object store behind the cache (``fetch``, see objects.py), a segment whose file
is not here is fetched from it before it counts as missing, whether a row says it was
made (a shared store) or not (another cache's work).

A row is data, never authority: a downloaded row's file is used only if its path passes
:meth:`~.files.CacheFiles.row_path` and the file is the whole WAV the row describes. A
row that fails either is reported, its file left alone (outside the cache) or dropped
(a corrupt segment inside it), and the row goes back to pending: the chunk is
synthesized again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AudioError
from ..util.wav import WavInfo, read_wav_info
from .db import Backend
from .files import CacheFiles

__all__ = ["Segment", "Segments"]

log = logging.getLogger("narrator")

_SKEW = 300.0  # seconds another machine's clock on a shared cache may run ahead


@dataclass(frozen=True, slots=True)
class Segment:
    """A finished chunk of audio on disk."""

    key: str
    path: Path
    frames: int
    rate: int
    channels: int
    width: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


class Segments:
    """The ``segments`` table over the cache's files."""

    def __init__(
        self,
        db: Backend,
        files: CacheFiles,
        *,
        fetch: Callable[..., WavInfo | None] | None = None,
    ) -> None:
        self._db = db
        self._files = files
        self._fetch = fetch  # ReadThrough.fetch(key, known=...): into the cache, or None
        # Keys whose row named a file that could not be used (outside the cache, or
        # corrupt), in this store's life: ``narrator check`` counts them.
        self.unusable: set[str] = set()

    # --- reading -------------------------------------------------------------------------

    def lookup(self, key: str, *, repair: bool = True) -> Segment | None:
        """The finished segment for ``key``, if its file is still there and whole."""
        row = self._db.row(
            "SELECT path, frames, rate, channels, width FROM segments "
            "WHERE key = ? AND state = 'downloaded'",
            (key,),
        )
        return self._from_objects(key) if row is None else self.usable(key, row, repair=repair)

    def _from_objects(self, key: str) -> Segment | None:
        """``key``'s audio from the object store, recorded here, when no row says it is
        done (made by another cache that shares the bucket)."""
        info = None if self._fetch is None else self._fetch(key, known=False)
        return None if info is None else self.downloaded(key, self._files.final(key), info)

    def usable(self, key: str, row: tuple[Any, ...], *, repair: bool = True) -> Segment | None:
        """The segment a downloaded row (path, frames, rate, channels, width) describes, if
        its file may be used; else the row goes back to pending (see the module), unless
        not ``repair``: then it is only noted in :attr:`unusable`."""
        path = self._files.row_path(key, row[0])
        if path is None:
            self.unusable.add(key)
            if repair:
                self.reset(key)
            return None
        if not path.is_file() and (self._fetch is None or self._fetch(key, known=True) is None):
            # gone (pruned, deleted by hand) and not in the object store: made again
            if repair:
                self.reset(key)
            return None
        try:
            info = read_wav_info(path)
        except (AudioError, OSError) as exc:
            info, why = None, str(exc)
        else:
            why = "its header does not match its row"
        if info is None or not _matches(info, row[1:]):
            self.unusable.add(key)
            if not repair:
                log.warning("segment %s is corrupt (%s)", key, why)
                return None
            log.warning("segment %s is corrupt (%s): dropped, it is made again", key, why)
            path.unlink(missing_ok=True)
            self.reset(key)
            return None
        return Segment(key, path, info.frames, info.rate, info.channels, info.width)

    def lookup_with_verdict(self, key: str) -> tuple[Segment | None, tuple[Any, ...] | None]:
        """:meth:`lookup`, and the columns of ``key``'s verdict row (see :mod:`.verdicts`),
        in one query: the pool asks both per chunk."""
        row = self._db.row(
            "SELECT s.state, s.path, s.frames, s.rate, s.channels, s.width, "
            "v.status, v.attempts, v.verdict, v.measurement, v.best "
            "FROM segments s LEFT JOIN verdicts v ON v.key = s.key WHERE s.key = ?",
            (key,),
        )
        if row is None:
            return self._from_objects(key), None
        verdict = None if row[6] is None else row[6:]
        if row[0] != "downloaded":
            return self._from_objects(key), verdict
        return self.usable(key, row[1:6]), verdict

    def pending_link(self, key: str, *, max_age: float) -> str | None:
        """The link of a synthesized-but-not-downloaded segment, if younger than ``max_age``."""
        row = self._db.row(
            # A failed row keeps its link when only the download failed: the audio was paid.
            "SELECT url, url_at FROM segments WHERE key = ? AND state IN ('synthesized', 'failed')",
            (key,),
        )
        if row is None or not isinstance(row[0], str) or not isinstance(row[1], (int, float)):
            return None
        age = time.time() - row[1]
        # A link from the future is a crafted one (beyond a shared disk's clock skew).
        return row[0] if -_SKEW <= age <= max_age else None

    def attempts(self, key: str) -> int:
        row = self._db.row("SELECT attempts FROM segments WHERE key = ?", (key,))
        return row[0] if row is not None and isinstance(row[0], int) else 0

    def states(self) -> dict[str, int]:
        return {
            str(state): int(n)
            for state, n in self._db.rows("SELECT state, COUNT(*) FROM segments GROUP BY state")
        }

    # --- writing -------------------------------------------------------------------------

    def set(self, key: str, **fields: object) -> None:
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.write(f"UPDATE segments SET {assignments} WHERE key = ?", (*fields.values(), key))

    def reset(self, key: str) -> None:
        """``key`` has no usable audio: pending again."""
        self.set(key, state="pending", path=None)

    def begin(self, key: str, billing_chars: int) -> None:
        self._db.write(
            "INSERT OR IGNORE INTO segments (key, state, billing_chars, updated) "
            "VALUES (?, 'pending', ?, ?)",
            (key, billing_chars, time.time()),
        )

    def record_attempt(self, key: str) -> None:
        self._db.write(
            "UPDATE segments SET attempts = attempts + 1, updated = ? WHERE key = ?",
            (time.time(), key),
        )

    def record_links(self, links: list[tuple[str, str, float]]) -> None:
        """Links (key, url, when) paid for, for rows without their audio yet."""
        now = time.time()
        self._db.write_many(
            "UPDATE segments SET state = 'synthesized', url = ?, url_at = ?, "
            "error = NULL, updated = ? WHERE key = ? AND state != 'downloaded'",
            [(url, at, now, key) for key, url, at in links],
        )

    def downloaded(self, key: str, final: Path, info: WavInfo) -> Segment:
        """Mark ``key`` downloaded as ``final``: one statement, whether its row exists (as
        it does in the pool) or not."""
        self._db.write(
            "INSERT INTO segments (key, state, billing_chars, path, frames, rate, channels, "
            "width, updated) VALUES (?, 'downloaded', 0, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET state = 'downloaded', path = excluded.path, "
            "url = NULL, url_at = NULL, frames = excluded.frames, rate = excluded.rate, "
            "channels = excluded.channels, width = excluded.width, error = NULL, "
            "updated = excluded.updated",
            (
                key, self._files.relative(final), info.frames, info.rate, info.channels,
                info.width, time.time(),
            ),
        )  # fmt: skip
        return Segment(key, final, info.frames, info.rate, info.channels, info.width)

    def forget(self, key: str) -> None:
        """Drop every row of ``key`` (its file is already gone, or never was followed)."""

        def drop() -> None:
            for table in ("segments", "verdicts", "uses"):
                self._db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))

        self._db.transact(drop)

    def clear(self) -> None:
        for table in ("uses", "verdicts", "segments"):
            self._db.write(f"DELETE FROM {table}")
        self._db.vacuum()


def _matches(info: WavInfo, described: tuple[Any, ...]) -> bool:
    """Whether a file's header says what its row says (frames, rate, channels, width)."""
    return (info.frames, info.rate, info.channels, info.width) == tuple(described)
