"""The segment store: a database of chunk states beside content-addressed WAV files.

Layout under the cache directory::

    narrator.sqlite3          the database (WAL mode; see db.py, the one place that opens it)
    segments/ab/abcdef....wav  the audio of that key, written atomically
    segments/tmp/              downloads in progress
    segments/qa/               the least bad attempt of a segment being synthesized again
    segments/outbox/           segments not yet put to the object store, if there is one
    reserve                    room given up when the disk fills (see files.py)

With an object store (``objects``, see objects.py) the folder is a read-through cache
in front of a bucket: a segment missing here is fetched from it, one stored here is
put there.

A segment's key hashes everything that changes its audio (provider, model, voice,
text), so a rerun finds finished work and an edited paragraph misses only its own
chunks.

:class:`Store` is the one front every caller uses: small repositories stand behind it,
one per concern and its tables (:mod:`.segments`, :mod:`.claims`, :mod:`.books`,
:mod:`.verdicts`, :mod:`.usage`), over one :class:`~.db.Database` and the cache's
:class:`~.files.CacheFiles`. A watcher's queue (:mod:`.queue`) and what was paid
(:mod:`.spend`) are read on short-lived connections of their own, made by the same
:mod:`.db`. With a URL the database is PostgreSQL (:mod:`.postgres`, a store several
machines share) and the folder keeps the audio files; the front is the same.

The database and the folder are data, never authority: a database that is not
narrator's, or is newer than this version, is refused before anything is sent
(:class:`~narrator.errors.StoreRefused`); a path a row names is used only inside the
cache (:meth:`~.files.CacheFiles.row_path`); a corrupt segment is dropped and made again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreAway
from ..util.wav import WavInfo
from .books import BookRecord, Books
from .claims import Claims
from .db import Backend, open_database, store_exists
from .files import (
    CacheFiles,
    StoreInfo,
    disk_usage,
    keep_reserve,
    links_in_reserve,
    note_in_reserve,
    place,
    place_bytes,
    refuse_links,
    sweep_temp,
)
from .objects import Objects, ReadThrough, S3Objects
from .segments import Segment, Segments
from .usage import DocumentUsage, PruneResult, Usage
from .verdicts import StoredVerdict, Verdicts, from_columns

log = logging.getLogger("narrator")

# The records its methods return are exported with it.
__all__ = [
    "BookRecord",
    "DocumentUsage",
    "PruneResult",
    "Segment",
    "Store",
    "StoreInfo",
    "StoredVerdict",
    "check_store",
    "open_store",
    "segment_key",
    "store_exists",
]


def segment_key(*, provider: str, voice: str, text: str) -> str:
    """The content address of one chunk's audio; ``provider`` is the provider's identity."""
    blob = json.dumps([provider, voice, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_store(root: Path, *, url: str | None = None) -> None:
    """Refuse (:class:`~narrator.errors.StoreRefused`) cache folder ``root`` if its
    database (``url``'s, if given) is not narrator's or is newer, or a link stands where
    narrator keeps its files; writes nothing. For a command that opens the store later
    (``watch``)."""
    refuse_links(root)
    if url is not None or store_exists(root):
        open_database(root, url, read_only=True).close()


def open_store(
    root: Path, *, url: str | None, objects_url: str | None, max_segment_bytes: int
) -> Store:
    """The :class:`Store` of cache folder ``root`` (its rows in ``url``'s database if
    given), in front of the object store at ``objects_url`` if there is one (objects
    read from it are at most ``max_segment_bytes``); boto3 is imported only then."""
    if objects_url is None:
        return Store(root, url=url)
    objects = S3Objects(objects_url, max_bytes=max_segment_bytes)
    return Store(root, url=url, objects=objects)


class Store:
    """Chunk states in the database and their audio files; one per cache directory.

    ``url``: the PostgreSQL database that holds the rows (``postgresql://...``), shared
    by every machine that uses it; None: ``narrator.sqlite3`` in ``root``. The audio
    files are in ``root`` either way.

    Opening it refuses (:class:`~narrator.errors.StoreRefused`) a database that is not
    narrator's or is newer than this version. Used from one thread at a time (see
    thread.py). With ``objects``, the cache reads through to that object store and puts
    every segment it stores there too (see objects.py).
    """

    def __init__(
        self, root: Path, *, url: str | None = None, objects: Objects | None = None
    ) -> None:
        self.root = root
        self._files = CacheFiles(root)
        self._db: Backend = open_database(root, url)
        self._through = None if objects is None else ReadThrough(objects, self._files)
        # This store's name on its claims: where it runs, so a claim of a process that has
        # died on this machine lapses at once rather than when it expires.
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        fetch = None if self._through is None else self._through.fetch
        self._segments = Segments(self._db, self._files, fetch=fetch)
        self._claims = Claims(self._db, owner)
        self._books = Books(self._db)
        self._verdicts = Verdicts(self._db)
        self._usage = Usage(self._db, self._files, owner)
        # What a stopping run's close could not write, the database being away (see close).
        self._kept_links = self._lost_links = self._unrecorded = 0
        sweep_temp(self._files.tmp)
        self._recover_reserved_links()
        keep_reserve(self._files.reserve, self._files.tmp)

    def _recover_reserved_links(self) -> None:
        """Move the links a run on a full disk wrote into the reserve to their rows, then
        let the reserve be made afresh (kept as it is if they cannot be written yet)."""
        links = links_in_reserve(self._files.reserve)
        if not links:
            return
        with contextlib.suppress(sqlite3.Error):
            self._segments.record_links(links)
            self._files.reserve.unlink(missing_ok=True)

    def close(self) -> None:
        if self._through is not None:
            self._through.close()  # what it cannot put stays in the outbox
        with contextlib.suppress(sqlite3.Error):
            self._claims.release_all()
        with contextlib.suppress(sqlite3.Error):
            self._usage.end_run()
        if (away := self._db.given_up()) is not None:
            log.warning("%s", self._left_unrecorded(away))
        self._db.close()

    def _left_unrecorded(self, away: str) -> str:
        """The one line a stopped run's close says when its database was given up on."""
        said = []
        if self._kept_links:
            said.append(f"{self._kept_links} paid links kept in {self._files.reserve}, "
                        "recorded by the next run with this cache folder")  # fmt: skip
        if self._lost_links:
            said.append(f"{self._lost_links} paid links lost (no room in the reserve): "
                        "those chunks are paid again")  # fmt: skip
        if self._unrecorded:
            said.append(f"{self._unrecorded} downloaded segments not recorded: made again "
                        "from their kept links")  # fmt: skip
        said.append("its claims lapse by themselves")
        return f"{away} was out of reach as the run stopped; not waited for: " + "; ".join(said)

    def interrupt(self, *, database: bool = False) -> None:
        """From any thread: stop waiting for the object store (the store is closing);
        a call waiting for it raises :class:`~narrator.errors.ObjectStoreError`. With
        ``database`` (a run stopping, after its grace), stop waiting for a shared database
        too: a call while it is away raises :class:`~narrator.errors.StoreAway`."""
        if self._through is not None:
            self._through.interrupt()
        if database:
            self._db.give_up()

    @property
    def owner(self) -> str:
        """This store's name on its claims and its run."""
        return self._claims.owner

    @owner.setter
    def owner(self, name: str) -> None:
        self._claims.owner = self._usage.owner = name

    @property
    def unusable(self) -> frozenset[str]:
        """Keys whose stored audio could not be used (a row naming a file outside the
        cache, or a corrupt file), found since this store was opened."""
        return frozenset(self._segments.unusable)

    # --- claims between processes --------------------------------------------------------

    def claim(self, key: str, *, seconds: float, billing_chars: int | None = None) -> bool:
        """Claim ``key`` for ``seconds`` (or renew this store's claim); False when another
        process holds a claim on it that has not lapsed (see :mod:`.claims`). With
        ``billing_chars``, the claim also makes sure ``key`` has a row (:meth:`begin`)."""
        return self._claims.claim(key, seconds, billing_chars=billing_chars)

    def release(self, key: str) -> None:
        """Give up this store's claim on ``key`` (its audio is in, or it failed)."""
        self._claims.release(key)

    def note_link_in_reserve(self, key: str, url: str) -> bool:
        """Write down a link paid for when the database cannot take it (a full disk): in
        place, in the reserve's zeros; the next store opened here records it. False if
        there is no reserve or no room in it."""
        return note_in_reserve(self._files.reserve, key, url, time.time())

    def release_reserve(self) -> bool:
        """Give the room kept for a full disk back; True if there was any."""
        try:
            self._files.reserve.unlink()
        except OSError:
            return False
        return True

    # --- finished audiobooks -------------------------------------------------------------

    def current_book(self, output: Path, fingerprint: str) -> BookRecord | None:
        """What ``output`` was written as, if it was written from ``fingerprint`` and none
        of its files has changed on disk since; None when it must be made (again)."""
        return self._books.current(output, fingerprint)

    def record_book(
        self, output: Path, fingerprint: str, seconds: float, *, files: Sequence[Path] = ()
    ) -> None:
        """Remember that ``output`` was just written from ``fingerprint`` as ``files``
        (its parts when it was split; ``output`` itself when ``files`` is empty)."""
        files = list(files) or [output]
        stats = [path.stat() for path in files]
        self._books.record(output, fingerprint, seconds, files, stats)

    # --- reading -------------------------------------------------------------------------

    def lookup(self, key: str, *, repair: bool = True) -> Segment | None:
        """The finished segment for ``key``, if its file is still there and whole. A row
        whose file is gone, corrupt or outside the cache goes back to pending (and a
        corrupt file is deleted), to be made again; not so without ``repair`` (``narrator
        check``), which only notes it in :attr:`unusable`."""
        return self._segments.lookup(key, repair=repair)

    def pending_link(self, key: str, *, max_age: float) -> str | None:
        """The link of a synthesized-but-not-downloaded segment, if younger than ``max_age``."""
        return self._segments.pending_link(key, max_age=max_age)

    def lookup_judged(self, key: str) -> tuple[Segment | None, StoredVerdict | None]:
        """:meth:`lookup` and :meth:`verdict` in one query (the pool asks both per chunk)."""
        segment, columns = self._segments.lookup_with_verdict(key)
        return segment, None if columns is None else from_columns(key, *columns)

    def attempts(self, key: str) -> int:
        return self._segments.attempts(key)

    def info(self) -> StoreInfo:
        files, size = disk_usage(self._files.segments, self._db.path)
        return StoreInfo(self.root, self._segments.states(), files, size)

    # --- writing -------------------------------------------------------------------------

    def begin(self, key: str, billing_chars: int) -> None:
        """Make sure ``key`` has a row."""
        self._segments.begin(key, billing_chars)

    def record_attempt(self, key: str) -> None:
        self._segments.record_attempt(key)

    def record_link(self, key: str, url: str) -> None:
        """Note the link of audio just paid for. If the shared database was given up on
        (a stopping run, the server away), the link goes into the reserve instead, where
        the next store opened on this cache folder finds it; StoreAway is raised still."""
        try:
            self._segments.set(key, state="synthesized", url=url, url_at=time.time(), error=None)
        except StoreAway:
            if self.note_link_in_reserve(key, url):
                self._kept_links += 1
            else:
                self._lost_links += 1
            raise

    def forget_link(self, key: str) -> None:
        self._segments.set(key, state="pending", url=None, url_at=None)

    def record_failure(self, key: str, error: str) -> None:
        self._segments.set(key, state="failed", error=error[:500])

    def temp_path(self, key: str) -> Path:
        """A fresh temporary file name for a download of ``key``."""
        return self._files.temp(key)

    def commit(
        self, key: str, temp: Path, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Move a checked download into place atomically and mark ``key`` downloaded.

        ``check`` sees the header first and raises :class:`AudioError` to refuse the
        audio, which then never reaches the store.
        """
        final = self._files.final(key)
        try:
            info = place(temp, final, check)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return self._stored(self._downloaded(key, final, info))

    def commit_bytes(
        self, key: str, data: bytes, *, check: Callable[[WavInfo], None] | None = None
    ) -> Segment:
        """Store audio held in memory (``check`` as for :meth:`commit`): written once."""
        final = self._files.final(key)
        info = place_bytes(data, self.temp_path(key), final, check)
        return self._stored(self._downloaded(key, final, info))

    def _downloaded(self, key: str, final: Path, info: WavInfo) -> Segment:
        try:
            return self._segments.downloaded(key, final, info)
        except StoreAway:
            self._unrecorded += 1  # said by close; its link was noted before the download
            raise

    def _stored(self, segment: Segment) -> Segment:
        if self._through is not None:
            self._through.stored(segment.key)  # put on the object store's own thread
        return segment

    def discard(self, key: str) -> None:
        """Forget ``key``'s audio (it failed a check): its file goes, its row is pending."""
        segment = self.lookup(key)
        if segment is not None:
            segment.path.unlink(missing_ok=True)
        self._segments.reset(key)

    # --- the quality gate ----------------------------------------------------------------

    def set_aside(self, key: str) -> None:
        """Move ``key``'s audio out of the way (the best bad attempt so far), to be
        synthesized again; the row goes back to pending."""
        aside = self._files.aside(key)
        aside.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._files.final(key), aside)
        self._segments.reset(key)

    def drop_segment(self, key: str) -> None:
        """Delete ``key``'s audio (a bad attempt no better than one set aside); pending again."""
        self._files.final(key).unlink(missing_ok=True)
        self._segments.reset(key)

    def discard_aside(self, key: str) -> None:
        self._files.aside(key).unlink(missing_ok=True)

    def restore_aside(self, key: str) -> Segment | None:
        """Put the attempt set aside back as ``key``'s audio; None if there is none."""
        aside = self._files.aside(key)
        if not aside.is_file():
            return None
        return self.commit(key, aside)

    def verdict(self, key: str) -> StoredVerdict | None:
        """The quality gate's verdict on ``key``'s audio, if it was judged."""
        return self._verdicts.get(key)

    def flagged(self, keys: list[str]) -> dict[str, StoredVerdict]:
        """The verdicts of those of ``keys`` that the quality gate flagged."""
        return self._verdicts.flagged(keys)

    def learned_rates(self, voice_key: str, *, limit: int = 256) -> list[tuple[str, float]]:
        """(script, seconds per weight unit) of the latest passed segments of a voice, oldest
        first."""
        return self._verdicts.learned_rates(voice_key, limit)

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
        self._verdicts.record(
            key, status, attempts=attempts, verdict=verdict, measurement=measurement,
            best=best, learned=learned,
        )  # fmt: skip

    # --- the bounded cache ---------------------------------------------------------------

    def note_run(self, keys: dict[str, list[str]]) -> None:
        """This run is in progress and uses ``keys`` (by document): none of them is pruned
        until it closes, and each counts as used now."""
        self._usage.note_run(keys)

    def usage(self) -> list[DocumentUsage]:
        """Each document's segments and bytes, the largest first."""
        return self._usage.by_document()

    def prune(
        self, *, max_bytes: int | None = None, older_than: float | None = None
    ) -> PruneResult:
        """Delete segments least recently used first; never one a live run uses, nor a
        file outside the cache (a row naming one is dropped)."""
        return self._usage.prune(
            max_bytes=max_bytes, older_than=older_than, forget=self._segments.forget
        )

    def clear(self) -> None:
        """Forget every segment and delete every file (the cache's own: no link followed)."""
        self._segments.clear()
        for shard in self._files.segments.iterdir():
            if shard.is_symlink():
                shard.unlink()  # the link only, never what it points to
            elif shard.is_dir() and shard != self._files.tmp:
                shutil.rmtree(shard, ignore_errors=True)
