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

Beside the segments: ``books`` and ``book_files`` (each audiobook written, and its files,
one per part when it was split, so a rerun can tell it is up to date), and ``claims``
(which process is synthesizing which chunk, with an expiry). A small ``reserve`` file
is given up when the disk fills, so the links of requests already paid for can still be
written down.
"""

from __future__ import annotations

import asyncio
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
from typing import Any, TypeVar

from ..util.atomic import replace_synced
from ..util.wav import WavInfo, read_wav_info

T = TypeVar("T")

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
# The audio files of each book: one row, or one per part when --split-hours cut it.
# A book with rows here is checked file by file (its own name may not exist at all).
_BOOK_FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS book_files (
    output   TEXT NOT NULL,
    number   INTEGER NOT NULL,
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (output, number)
)
"""
# Who is synthesizing a chunk right now, when several processes share one cache: a
# process claims a key before it sends the request, and the others wait for its audio.
# A claim lapses at ``expires`` (wall-clock seconds), so a killed process blocks no one.
_CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
)
"""
_STALE_TEMP_SECONDS = 3600.0
# SQLite's own busy wait (the connection timeout) covers most contention; a write that
# still finds the database locked is tried again this many times before it is an error.
_LOCKED_RETRIES = 20
# Room kept on the cache's disk (a file of zeros) and given up when the disk fills, so the
# links of requests already paid for can still be written down: resume bills them once.
_RESERVE_BYTES = 512 * 1024  # older temp files belong to no live run
# The quality gate's verdict on each segment's audio (see quality.py). ``status``:
# passed; provisional (passed while the run's speech rate was still the prior's guess);
# retrying (judged bad, synthesized again; ``best`` is the least bad attempt so far, its
# file set aside under segments/qa/); flagged (bad on every attempt, the best one kept).
# A pass also stores what it taught (``voice_key``, ``script``, ``rate``), so a later run
# starts from this voice's measured speech rate instead of the prior.
_VERDICTS_SCHEMA = """
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
class BookRecord:
    """An audiobook as it was last written: its length and its audio files."""

    seconds: float
    files: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A verdict row: the gate's judgment of a segment, as JSON-ready dicts."""

    key: str
    status: str
    attempts: int
    verdict: dict[str, Any]
    measurement: dict[str, Any]
    best: dict[str, Any] | None


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
        self._retry_locked(self._prepare)  # several processes may open one cache at once
        # This store's name on its claims: where it runs, so a claim of a process that has
        # died on this machine lapses at once rather than when it expires.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._sweep_temp()
        self._reserve = root / "reserve"
        self._keep_reserve()

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL survives a killed process; only a power cut can lose the last rows,
        # and then the files they point to are checked again anyway.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_BOOKS_SCHEMA)
        self._db.execute(_BOOK_FILES_SCHEMA)
        self._db.execute(_CLAIMS_SCHEMA)
        self._db.execute(_VERDICTS_SCHEMA)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._retry_locked(
                lambda: self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            )
        self._db.close()

    def _retry_locked(self, write: Callable[[], T]) -> T:
        """Run ``write``, again after a short pause while another process holds the lock."""
        for attempt in range(_LOCKED_RETRIES):
            try:
                return write()
            except sqlite3.OperationalError as exc:
                if attempt + 1 == _LOCKED_RETRIES or not _is_locked(exc):
                    raise
                time.sleep(min(1.0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    # --- claims between processes --------------------------------------------------------

    def claim(self, key: str, *, seconds: float) -> bool:
        """Claim ``key`` for ``seconds`` (or renew this store's claim); False when another
        process holds a claim on it that has not lapsed."""

        def attempt() -> bool:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                now = time.time()
                row = self._db.execute(
                    "SELECT owner, expires FROM claims WHERE key = ?", (key,)
                ).fetchone()
                if row is not None and row[0] != self.owner and row[1] > now and _alive(row[0]):
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO claims (key, owner, expires) VALUES (?, ?, ?)",
                    (key, self.owner, now + seconds),
                )
                return True

        return self._retry_locked(attempt)

    def release(self, key: str) -> None:
        """Give up this store's claim on ``key`` (its audio is in, or it failed)."""
        self._retry_locked(
            lambda: self._db.execute(
                "DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner)
            )
        )

    def _keep_reserve(self) -> None:
        with contextlib.suppress(OSError):  # a disk already full has nothing to spare
            if not self._reserve.exists():
                tmp = self._tmp / f"reserve.{uuid.uuid4().hex[:8]}"
                try:
                    with tmp.open("wb") as fh:
                        fh.write(bytes(_RESERVE_BYTES))  # real blocks, not a sparse file
                    replace_synced(tmp, self._reserve)
                finally:
                    tmp.unlink(missing_ok=True)

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
        name = str(output.absolute())
        row = self._db.execute(
            "SELECT fingerprint, size, mtime_ns, seconds FROM books WHERE output = ?", (name,)
        ).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        files = self._db.execute(
            "SELECT path, size, mtime_ns FROM book_files WHERE output = ? ORDER BY number",
            (name,),
        ).fetchall()
        # A book recorded before parts were recorded is its own one file.
        expected = [(path, size, mtime) for path, size, mtime in files] or [(name, row[1], row[2])]
        for path, size, mtime in expected:
            try:
                stat = Path(path).stat()
            except OSError:
                return None
            if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
                return None
        return BookRecord(float(row[3]), tuple(Path(path) for path, _, _ in expected))

    def record_book(
        self, output: Path, fingerprint: str, seconds: float, *, files: Sequence[Path] = ()
    ) -> None:
        """Remember that ``output`` was just written from ``fingerprint`` as ``files``
        (its parts when it was split; ``output`` itself when ``files`` is empty)."""
        files = list(files) or [output]
        stats = [path.stat() for path in files]
        name = str(output.absolute())
        self._retry_locked(lambda: self._write_book(name, fingerprint, seconds, files, stats))

    def _write_book(
        self,
        name: str,
        fingerprint: str,
        seconds: float,
        files: Sequence[Path],
        stats: Sequence[os.stat_result],
    ) -> None:
        with self._db:  # the row and its files together, or neither
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO books (output, fingerprint, size, mtime_ns, seconds, "
                "updated) VALUES (?, ?, ?, ?, ?, ?)",
                (name, fingerprint, stats[0].st_size, stats[0].st_mtime_ns, seconds, time.time()),
            )
            self._db.execute("DELETE FROM book_files WHERE output = ?", (name,))
            self._db.executemany(
                "INSERT INTO book_files (output, number, path, size, mtime_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (name, n, str(path.absolute()), st.st_size, st.st_mtime_ns)
                    for n, (path, st) in enumerate(zip(files, stats, strict=True), start=1)
                ],
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
        stored = None
        if row[6] is not None:
            best = json.loads(row[10]) if row[10] else None
            stored = StoredVerdict(
                key, row[6], row[7], json.loads(row[8]), json.loads(row[9]), best
            )
        if row[0] != "downloaded":
            return None, stored
        path = self.root / row[1]
        if not path.is_file():
            self._set(key, state="pending", path=None)
            return None, stored
        return Segment(key, path, row[2], row[3], row[4], row[5]), stored

    def verdict(self, key: str) -> StoredVerdict | None:
        """The quality gate's verdict on ``key``'s audio, if it was judged."""
        row = self._db.execute(
            "SELECT status, attempts, verdict, measurement, best FROM verdicts WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        best = json.loads(row[4]) if row[4] else None
        return StoredVerdict(key, row[0], row[1], json.loads(row[2]), json.loads(row[3]), best)

    def flagged(self, keys: list[str]) -> dict[str, StoredVerdict]:
        """The verdicts of those of ``keys`` that the quality gate flagged."""
        found: dict[str, StoredVerdict] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the parameters of one query
            batch = keys[start : start + 500]
            rows = self._db.execute(
                "SELECT key, attempts, verdict, measurement FROM verdicts "
                f"WHERE status = 'flagged' AND key IN ({','.join('?' * len(batch))})",
                batch,
            )
            for key, attempts, verdict, measurement in rows:
                found[key] = StoredVerdict(
                    key, "flagged", attempts, json.loads(verdict), json.loads(measurement), None
                )
        return found

    def learned_rates(self, voice_key: str, *, limit: int = 256) -> list[tuple[str, float]]:
        """(script, seconds per weight unit) of the latest passed segments of a voice, oldest
        first."""
        rows = self._db.execute(
            "SELECT script, rate FROM verdicts WHERE voice_key = ? AND status = 'passed' "
            "AND script IS NOT NULL ORDER BY updated DESC LIMIT ?",
            (voice_key, limit),
        ).fetchall()
        return [(str(script), float(rate)) for script, rate in reversed(rows)]

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

    # --- the quality gate ----------------------------------------------------------------

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
        voice_key, script, rate = learned or (None, None, None)
        row = (
            key, status, attempts, json.dumps(verdict), json.dumps(measurement),
            json.dumps(best) if best is not None else None, voice_key, script, rate, time.time(),
        )  # fmt: skip
        self._retry_locked(
            lambda: self._db.execute(
                "INSERT OR REPLACE INTO verdicts (key, status, attempts, verdict, measurement, "
                "best, voice_key, script, rate, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

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

    async def restore_aside(self, key: str) -> Segment | None:
        """Put the attempt set aside back as ``key``'s audio; None if there is none."""
        aside = self._aside_path(key)
        if not aside.is_file():
            return None
        return await self.commit(key, aside)

    def clear(self) -> None:
        """Forget every segment and delete every file."""
        self._db.execute("DELETE FROM verdicts")
        self._db.execute("DELETE FROM segments")
        self._db.execute("VACUUM")
        for entry in self._segments.iterdir():
            if entry.is_dir() and entry != self._tmp:
                shutil.rmtree(entry, ignore_errors=True)


def _alive(owner: str) -> bool:
    """Whether the process named in a claim may still be working on it."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine on a shared disk: only the expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, owned by someone else
    return True


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "database is locked" in message or "database is busy" in message


def _place(temp: Path, final: Path, check: Callable[[WavInfo], None] | None) -> WavInfo:
    info = read_wav_info(temp)  # raises AudioError for anything but whole PCM WAV
    if check is not None:
        check(info)
    final.parent.mkdir(exist_ok=True)
    replace_synced(temp, final)
    return info
