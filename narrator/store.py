"""The segment store: a SQLite file of chunk states beside content-addressed WAV files.

Layout under the cache directory::

    narrator.sqlite3          one row per segment key (WAL mode)
    segments/ab/abcdef....wav  the audio of that key, written atomically
    segments/tmp/              downloads in progress

A segment's key hashes everything that changes its audio (provider, model, voice,
text), so a rerun finds finished work and an edited paragraph misses only its own
chunks. States: ``pending`` (known, nothing usable yet), ``synthesized`` (the service
made it; its link is kept so a crash before the download bills nothing twice),
``downloaded`` (the file is in place), ``failed`` (the last try failed; retried on the
next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .audio import WavInfo, read_wav_info

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    key           TEXT PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('pending','synthesized','downloaded','failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    billing_chars INTEGER NOT NULL,
    url           TEXT,
    url_at        REAL,
    path          TEXT,
    frames        INTEGER,
    rate          INTEGER,
    channels      INTEGER,
    width         INTEGER,
    error         TEXT,
    updated       REAL NOT NULL
)
"""
# One row per audiobook written: what it was made from, and the file as it was left,
# so a rerun can tell an up-to-date audiobook from a stale, edited or missing one.
_BOOKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS books (
    output      TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    updated     REAL NOT NULL
)
"""
_STALE_TEMP_SECONDS = 3600.0  # older temp files belong to no live run


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


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``narrator cache info`` shows."""

    root: Path
    states: dict[str, int]
    files: int
    bytes: int


class Store:
    """Chunk states in SQLite and their audio files; one per cache directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._segments = root / "segments"
        self._tmp = self._segments / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "narrator.sqlite3", isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL survives a killed process; only a power cut can lose the last rows,
        # and then the files they point to are checked again anyway.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_BOOKS_SCHEMA)
        self._sweep_temp()

    def close(self) -> None:
        self._db.close()

    # --- finished audiobooks -------------------------------------------------------------

    def current_book(self, output: Path, fingerprint: str) -> float | None:
        """The audio seconds of ``output`` if it was written from ``fingerprint`` and has
        not changed on disk since; None when it must be made (again)."""
        row = self._db.execute(
            "SELECT fingerprint, size, mtime_ns, seconds FROM books WHERE output = ?",
            (str(output.absolute()),),
        ).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        try:
            stat = output.stat()
        except OSError:
            return None
        if (stat.st_size, stat.st_mtime_ns) != (row[1], row[2]):
            return None
        return float(row[3])

    def record_book(self, output: Path, fingerprint: str, seconds: float) -> None:
        """Remember that ``output`` was just written from ``fingerprint``."""
        stat = output.stat()
        self._db.execute(
            "INSERT OR REPLACE INTO books (output, fingerprint, size, mtime_ns, seconds, updated) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(output.absolute()),
                fingerprint,
                stat.st_size,
                stat.st_mtime_ns,
                seconds,
                time.time(),
            ),
        )

    def _sweep_temp(self) -> None:
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for entry in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

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

    def attempts(self, key: str) -> int:
        row = self._db.execute("SELECT attempts FROM segments WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def info(self) -> StoreInfo:
        states = dict(self._db.execute("SELECT state, COUNT(*) FROM segments GROUP BY state"))
        files = size = 0
        for path in self._segments.glob("*/*.wav"):
            files += 1
            size += path.stat().st_size
        db_size = sum(p.stat().st_size for p in self.root.glob("narrator.sqlite3*"))
        return StoreInfo(self.root, states, files, size + db_size)

    # --- writing -------------------------------------------------------------------------

    def _set(self, key: str, **fields: object) -> None:
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE segments SET {assignments} WHERE key = ?", (*fields.values(), key)
        )

    def begin(self, key: str, billing_chars: int) -> None:
        """Make sure ``key`` has a row."""
        self._db.execute(
            "INSERT OR IGNORE INTO segments (key, state, billing_chars, updated) "
            "VALUES (?, 'pending', ?, ?)",
            (key, billing_chars, time.time()),
        )

    def record_attempt(self, key: str) -> None:
        self._db.execute(
            "UPDATE segments SET attempts = attempts + 1, updated = ? WHERE key = ?",
            (time.time(), key),
        )

    def record_link(self, key: str, url: str) -> None:
        self._set(key, state="synthesized", url=url, url_at=time.time(), error=None)

    def forget_link(self, key: str) -> None:
        self._set(key, state="pending", url=None, url_at=None)

    def record_failure(self, key: str, error: str) -> None:
        self._set(key, state="failed", error=error[:500])

    def temp_path(self, key: str) -> Path:
        """A fresh temporary file name for a download of ``key``."""
        return self._tmp / f"{key}.{uuid.uuid4().hex[:8]}.part"

    async def commit(
        self, key: str, temp: Path, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Move a checked download into place atomically and mark ``key`` downloaded.

        ``check`` sees the header first and raises :class:`AudioError` to refuse the
        audio, which then never reaches the store.
        """
        final = self._final_path(key)
        try:
            info = await asyncio.to_thread(_place, temp, final, check)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self.begin(key, 0)  # a no-op when the row exists, as it does in the pool
        self._set(
            key,
            state="downloaded",
            path=str(final.relative_to(self.root)),
            url=None,
            url_at=None,
            frames=info.frames,
            rate=info.rate,
            channels=info.channels,
            width=info.width,
            error=None,
        )
        return Segment(key, final, info.frames, info.rate, info.channels, info.width)

    async def commit_bytes(
        self, key: str, data: bytes, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Store audio that came inline in the response (``check`` as for :meth:`commit`)."""
        temp = self.temp_path(key)
        await asyncio.to_thread(temp.write_bytes, data)
        return await self.commit(key, temp, check=check)

    def discard(self, key: str) -> None:
        """Forget ``key``'s audio (it failed a check): its file goes, its row is pending."""
        segment = self.lookup(key)
        if segment is not None:
            segment.path.unlink(missing_ok=True)
        self._set(key, state="pending", path=None)

    def clear(self) -> None:
        """Forget every segment and delete every file."""
        self._db.execute("DELETE FROM segments")
        self._db.execute("VACUUM")
        for entry in self._segments.iterdir():
            if entry.is_dir() and entry != self._tmp:
                shutil.rmtree(entry, ignore_errors=True)


def _place(temp: Path, final: Path, check: Callable[[WavInfo], None] | None) -> WavInfo:
    info = read_wav_info(temp)  # raises AudioError for anything but whole PCM WAV
    if check is not None:
        check(info)
    with temp.open("rb+") as fh:
        os.fsync(fh.fileno())
    final.parent.mkdir(exist_ok=True)
    os.replace(temp, final)
    _fsync_dir(final.parent)
    return info


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
