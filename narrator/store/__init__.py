"""The segment store: a SQLite file of chunk states beside content-addressed WAV files.

Layout under the cache directory::

    narrator.sqlite3          one row per segment key (WAL mode)
    segments/ab/abcdef....wav  the audio of that key, written atomically
    segments/tmp/              downloads in progress
    segments/qa/               the least bad attempt of a segment being synthesized again

A segment's key hashes everything that changes its audio (provider, model, voice,
text), so a rerun finds finished work and an edited paragraph misses only its own
chunks. States: ``pending`` (known, nothing usable yet), ``synthesized`` (the service
made it; its link is kept so a crash before the download bills nothing twice),
``downloaded`` (the file is in place), ``failed`` (the last try failed; retried on the
next run). The quality gate's verdict on each segment's audio is a row of its own table
(``verdicts``, below).

Beside the segments: ``books`` (:mod:`.books`), ``claims`` (:mod:`.claims`)
and a ``reserve`` file given up when the disk fills (:mod:`.files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..util.wav import WavInfo
from . import books, usage, verdicts
from .books import BookRecord
from .claims import try_claim
from .db import open_database, retry_locked
from .files import (
    StoreInfo,
    disk_usage,
    keep_reserve,
    links_in_reserve,
    note_in_reserve,
    place,
    place_bytes,
    sweep_temp,
)
from .usage import UsageMixin
from .verdicts import StoredVerdict, VerdictsMixin

# The records its methods return are exported with it.
__all__ = ["BookRecord", "Segment", "Store", "StoreInfo", "StoredVerdict", "segment_key"]


T = TypeVar("T")


def segment_key(*, provider: str, voice: str, text: str) -> str:
    """The content address of one chunk's audio; ``provider`` is the provider's identity."""
    blob = json.dumps([provider, voice, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


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


class Store(UsageMixin, VerdictsMixin):
    """Chunk states in SQLite and their audio files; one per cache directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._segments = root / "segments"
        self._tmp = self._segments / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        # Used from the store's own thread (see thread.py), one caller at a time.
        self._db = open_database(root / "narrator.sqlite3")
        # This store's name on its claims: where it runs, so a claim of a process that has
        # died on this machine lapses at once rather than when it expires.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        sweep_temp(self._tmp)
        self._reserve = root / "reserve"
        self._recover_reserved_links()
        keep_reserve(self._reserve, self._tmp)

    def _recover_reserved_links(self) -> None:
        """Move the links a run on a full disk wrote into the reserve to their rows, then
        let the reserve be made afresh (kept as it is if they cannot be written yet)."""
        links = links_in_reserve(self._reserve)
        if not links:
            return
        rows = [(url, at, time.time(), key) for key, url, at in links]
        with contextlib.suppress(sqlite3.Error):
            self._retry_locked(
                lambda: self._db.executemany(
                    "UPDATE segments SET state = 'synthesized', url = ?, url_at = ?, "
                    "error = NULL, updated = ? WHERE key = ? AND state != 'downloaded'",
                    rows,
                )
            )
            self._reserve.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._retry_locked(
                lambda: self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            )
            self._retry_locked(lambda: usage.end_run(self._db, self.owner))
        self._db.close()

    def _retry_locked(self, write: Callable[[], T]) -> T:
        return retry_locked(write)

    # --- claims between processes --------------------------------------------------------

    def claim(self, key: str, *, seconds: float, billing_chars: int | None = None) -> bool:
        """Claim ``key`` for ``seconds`` (or renew this store's claim); False when another
        process holds a claim on it that has not lapsed (see :mod:`.claims`). With
        ``billing_chars``, the claim also makes sure ``key`` has a row (:meth:`begin`)."""
        return self._retry_locked(
            lambda: try_claim(self._db, key, self.owner, seconds, billing_chars=billing_chars)
        )

    def release(self, key: str) -> None:
        """Give up this store's claim on ``key`` (its audio is in, or it failed)."""
        self._retry_locked(
            lambda: self._db.execute(
                "DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner)
            )
        )

    def note_link_in_reserve(self, key: str, url: str) -> bool:
        """Write down a link paid for when the database cannot take it (a full disk): in
        place, in the reserve's zeros; the next store opened here records it. False if
        there is no reserve or no room in it."""
        return note_in_reserve(self._reserve, key, url, time.time())

    def release_reserve(self) -> bool:
        """Give the room kept for a full disk back; True if there was any."""
        try:
            self._reserve.unlink()
        except OSError:
            return False
        return True

    # --- finished audiobooks -------------------------------------------------------------

    def current_book(self, output: Path, fingerprint: str) -> BookRecord | None:
        """What ``output`` was written as, if it was written from ``fingerprint`` and none
        of its files has changed on disk since; None when it must be made (again)."""
        return books.current_book(self._db, output, fingerprint)

    def record_book(
        self, output: Path, fingerprint: str, seconds: float, *, files: Sequence[Path] = ()
    ) -> None:
        """Remember that ``output`` was just written from ``fingerprint`` as ``files``
        (its parts when it was split; ``output`` itself when ``files`` is empty)."""
        files = list(files) or [output]
        stats = [path.stat() for path in files]
        name = str(output.absolute())
        self._retry_locked(
            lambda: books.write_book(self._db, name, fingerprint, seconds, files, stats)
        )

    def _final_path(self, key: str) -> Path:
        return self._segments / key[:2] / f"{key}.wav"

    # --- reading -------------------------------------------------------------------------

    def lookup(self, key: str) -> Segment | None:
        """The finished segment for ``key``, if its file is still there."""
        row = self._db.execute(
            "SELECT path, frames, rate, channels, width FROM segments "
            "WHERE key = ? AND state = 'downloaded'",
            (key,),
        ).fetchone()
        if row is None:
            return None
        path = self.root / row[0]
        if not path.is_file():
            self._set(key, state="pending", path=None)
            return None
        return Segment(key, path, row[1], row[2], row[3], row[4])

    def pending_link(self, key: str, *, max_age: float) -> str | None:
        """The link of a synthesized-but-not-downloaded segment, if younger than ``max_age``."""
        row = self._db.execute(
            # A failed row keeps its link when only the download failed: the audio was paid for.
            "SELECT url, url_at FROM segments WHERE key = ? AND state IN ('synthesized', 'failed')",
            (key,),
        ).fetchone()
        if row is None or row[0] is None or time.time() - row[1] > max_age:
            return None
        return str(row[0])

    def lookup_judged(self, key: str) -> tuple[Segment | None, StoredVerdict | None]:
        """:meth:`lookup` and :meth:`verdict` in one query (the pool asks both per chunk)."""
        row = self._db.execute(
            "SELECT s.state, s.path, s.frames, s.rate, s.channels, s.width, "
            "v.status, v.attempts, v.verdict, v.measurement, v.best "
            "FROM segments s LEFT JOIN verdicts v ON v.key = s.key WHERE s.key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None, None
        stored = None if row[6] is None else verdicts.from_columns(key, *row[6:])
        if row[0] != "downloaded":
            return None, stored
        path = self.root / row[1]
        if not path.is_file():
            self._set(key, state="pending", path=None)
            return None, stored
        return Segment(key, path, row[2], row[3], row[4], row[5]), stored

    def attempts(self, key: str) -> int:
        row = self._db.execute("SELECT attempts FROM segments WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def info(self) -> StoreInfo:
        states = dict(self._db.execute("SELECT state, COUNT(*) FROM segments GROUP BY state"))
        return StoreInfo(self.root, states, *disk_usage(self.root, self._segments))

    # --- writing -------------------------------------------------------------------------

    def _set(self, key: str, **fields: object) -> None:
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._retry_locked(
            lambda: self._db.execute(
                f"UPDATE segments SET {assignments} WHERE key = ?", (*fields.values(), key)
            )
        )

    def begin(self, key: str, billing_chars: int) -> None:
        """Make sure ``key`` has a row."""
        self._retry_locked(
            lambda: self._db.execute(
                "INSERT OR IGNORE INTO segments (key, state, billing_chars, updated) "
                "VALUES (?, 'pending', ?, ?)",
                (key, billing_chars, time.time()),
            )
        )

    def record_attempt(self, key: str) -> None:
        self._retry_locked(
            lambda: self._db.execute(
                "UPDATE segments SET attempts = attempts + 1, updated = ? WHERE key = ?",
                (time.time(), key),
            )
        )

    def record_link(self, key: str, url: str) -> None:
        self._set(key, state="synthesized", url=url, url_at=time.time(), error=None)

    def forget_link(self, key: str) -> None:
        self._set(key, state="pending", url=None, url_at=None)

    def record_failure(self, key: str, error: str) -> None:
        self._set(key, state="failed", error=error[:500])

    def temp_path(self, key: str) -> Path:
        """A fresh temporary file name for a download of ``key``."""
        return self._tmp / f"{key}.{os.urandom(4).hex()}.part"

    def commit(
        self, key: str, temp: Path, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Move a checked download into place atomically and mark ``key`` downloaded.

        ``check`` sees the header first and raises :class:`AudioError` to refuse the
        audio, which then never reaches the store.
        """
        final = self._final_path(key)
        try:
            info = place(temp, final, check)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return self._downloaded(key, final, info)

    def commit_bytes(
        self, key: str, data: bytes, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Store audio held in memory (``check`` as for :meth:`commit`): written once."""
        final = self._final_path(key)
        return self._downloaded(key, final, place_bytes(data, self.temp_path(key), final, check))

    def _downloaded(self, key: str, final: Path, info: WavInfo) -> Segment:
        """Mark ``key`` downloaded as ``final``: one statement, whether its row exists (as
        it does in the pool) or not."""
        row = (key, str(final.relative_to(self.root)), info.frames, info.rate, info.channels)
        self._retry_locked(
            lambda: self._db.execute(
                "INSERT INTO segments (key, state, billing_chars, path, frames, rate, channels, "
                "width, updated) VALUES (?, 'downloaded', 0, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = 'downloaded', path = excluded.path, "
                "url = NULL, url_at = NULL, frames = excluded.frames, rate = excluded.rate, "
                "channels = excluded.channels, width = excluded.width, error = NULL, "
                "updated = excluded.updated",
                (*row, info.width, time.time()),
            )
        )
        return Segment(key, final, info.frames, info.rate, info.channels, info.width)

    def discard(self, key: str) -> None:
        """Forget ``key``'s audio (it failed a check): its file goes, its row is pending."""
        segment = self.lookup(key)
        if segment is not None:
            segment.path.unlink(missing_ok=True)
        self._set(key, state="pending", path=None)

    # --- the quality gate ----------------------------------------------------------------

    def _aside_path(self, key: str) -> Path:
        return self._segments / "qa" / f"{key}.wav"

    def set_aside(self, key: str) -> None:
        """Move ``key``'s audio out of the way (the best bad attempt so far), to be
        synthesized again; the row goes back to pending."""
        aside = self._aside_path(key)
        aside.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._final_path(key), aside)
        self._set(key, state="pending", path=None)

    def drop_segment(self, key: str) -> None:
        """Delete ``key``'s audio (a bad attempt no better than one set aside); pending again."""
        self._final_path(key).unlink(missing_ok=True)
        self._set(key, state="pending", path=None)

    def discard_aside(self, key: str) -> None:
        self._aside_path(key).unlink(missing_ok=True)

    def restore_aside(self, key: str) -> Segment | None:
        """Put the attempt set aside back as ``key``'s audio; None if there is none."""
        aside = self._aside_path(key)
        if not aside.is_file():
            return None
        return self.commit(key, aside)

    def clear(self) -> None:
        """Forget every segment and delete every file."""
        self._db.execute("DELETE FROM uses")
        self._db.execute("DELETE FROM verdicts")
        self._db.execute("DELETE FROM segments")
        self._db.execute("VACUUM")
        for entry in self._segments.iterdir():
            if entry.is_dir() and entry != self._tmp:
                shutil.rmtree(entry, ignore_errors=True)
