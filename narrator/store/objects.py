"""Segment audio in S3-compatible object storage, with the local cache in front of it.

Several machines narrating for one account share their segments through a bucket: a
segment made on one is read on another instead of being paid for again. The layout is
content-addressed, like the cache folder's::

    s3://BUCKET/PREFIX/segments/ab/abcdef....wav   the audio of key abcdef...

A segment is written to the local cache first (atomically, checked: see files.py), then
put (:class:`Outbox`: a marker file per segment not yet put, ``segments/outbox/<key>``,
so one left unsent by an outage or a crash is put when the cache is next opened). A
lookup that finds no file in the cache asks the bucket (:class:`ReadThrough`), downloads
into the cache's ``tmp`` and places the file with the same check as any segment: a
corrupt or oversized object is reported and not used. The bucket's contents are data,
never authority: an object can only ever be the audio of the key it is named by, under
the size cap for one segment.

The URL, the credentials and the waiting for an object store out of reach are s3.py's.
A put waits on the outbox's own thread (the run goes on; the segment is in the cache); a
get waits on the store's thread, so the run pauses rather than paying again for audio
the bucket holds. Closing the store waits out an outage for its last puts, up to
DRAIN_SECONDS (not at all once interrupted: a stopping run); what is still unsent stays
in the outbox, and is put when the cache is next opened with the object store.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import AudioError, ObjectStoreError
from ..util.wav import HEADER_PROBE, WavInfo, parse_wav
from .files import CacheFiles, place
from .s3 import BACKOFF, ObjectURL, Service, is_s3_url, missing, parse_url, upload_book

__all__ = [
    "ObjectURL",
    "Objects",
    "Outbox",
    "ReadThrough",
    "S3Objects",
    "is_s3_url",
    "parse_url",
    "upload_book",
]

log = logging.getLogger("narrator")

T = TypeVar("T")

_KEY = re.compile(r"[0-9a-f]{64}")  # a segment key: SHA-256, hex
MISS_MEMORY = 2.0  # seconds a key the bucket did not hold is not asked about again
DRAIN_SECONDS = 30.0  # what closing the store gives the puts still queued


# --- segments in the bucket ---------------------------------------------------------------


class Objects(Protocol):
    """Where segments live beside the cache folder, by key."""

    def put(self, key: str, path: Path) -> bool:
        """Store the checked WAV at ``path`` as ``key``'s audio; False if it was there."""
        ...

    def get(self, key: str, dest: Path) -> bool:
        """Write ``key``'s audio to ``dest``; False if there is none. Raises
        :class:`AudioError` for an object that cannot be a segment (over the size cap)."""
        ...

    def exists(self, key: str) -> bool: ...

    def interrupt(self) -> None:
        """From any thread: stop waiting for the service (the store is closing)."""
        ...


class S3Objects:
    """Segments in a bucket of an S3-compatible object store (see the module).

    ``url`` is checked (:func:`parse_url`) and so are the bucket and the credentials
    (a one-line :class:`ObjectStoreError`); ``max_bytes`` caps one object read
    (``Settings.max_segment_bytes``); ``backoff`` is (first, longest) wait in seconds.
    """

    def __init__(
        self,
        url: str | ObjectURL,
        *,
        max_bytes: int,
        backoff: tuple[float, float] = BACKOFF,
        check: bool = True,
    ) -> None:
        self.url = parse_url(url) if isinstance(url, str) else url
        self.max_bytes = max_bytes
        self._service = Service(self.url, backoff=backoff)
        self._client = self._service.client
        if check:
            self._service.check_bucket()

    def name(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a segment key: {ascii(key)[:80]}")  # a bug: keys are ours
        return self.url.name(f"segments/{key[:2]}/{key}.wav")

    def interrupt(self) -> None:
        self._service.interrupt()

    def exists(self, key: str) -> bool:
        name = self.name(key)

        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.url.bucket, Key=name)
            except Exception as exc:
                if missing(exc):
                    return False
                raise
            return True

        return self._guarded(head)

    def put(self, key: str, path: Path) -> bool:
        """Put the WAV at ``path`` (checked again first: a file that is no longer whole
        raises :class:`AudioError`, never reaching the bucket). An object already there
        with the same bytes is left alone (False); one with other bytes (a retake the
        quality gate kept) is replaced."""
        name = self.name(key)
        data = path.read_bytes()
        parse_wav(data[:HEADER_PROBE], len(data), name=path.name)
        sha = hashlib.sha256(data).hexdigest()
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()

        def send() -> bool:
            try:
                head = self._client.head_object(Bucket=self.url.bucket, Key=name)
            except Exception as exc:
                if not missing(exc):
                    raise
            else:
                if head.get("Metadata", {}).get("sha256") == sha:
                    return False
            self._client.put_object(
                Bucket=self.url.bucket,
                Key=name,
                Body=data,
                ContentMD5=md5,  # a body damaged on the way is refused by the server
                ContentType="audio/wav",
                Metadata={"sha256": sha},
            )
            return True

        return self._guarded(send)

    def get(self, key: str, dest: Path) -> bool:
        name = self.name(key)

        def fetch() -> bool:
            try:
                answer = self._client.get_object(Bucket=self.url.bucket, Key=name)
            except Exception as exc:
                if missing(exc):
                    return False
                raise
            body = answer["Body"]
            try:
                size = answer.get("ContentLength")
                if not isinstance(size, int) or size > self.max_bytes:
                    raise AudioError(
                        f"the object {name} is {size} bytes, over the cap for one segment "
                        f"({self.max_bytes})"
                    )
                got = 0
                with dest.open("wb") as fh:
                    for piece in body.iter_chunks(1 << 16):
                        got += len(piece)
                        if got > self.max_bytes:  # longer than it said: never past the cap
                            raise AudioError(f"the object {name} is over the cap for one segment")
                        fh.write(piece)
            finally:
                body.close()
            return True

        return self._guarded(fetch)

    def _guarded(self, op: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._service.call(op)
        except (ClientError, BotoCoreError) as exc:  # neither the object nor "none": refused
            raise self._service.refused(exc) from exc


# --- the cache in front of the bucket -----------------------------------------------------


class Outbox:
    """Segments of this cache not yet put to the object store, put by a thread of their own.

    Each is a marker file (``segments/outbox/<key>``, empty), made before the put is queued
    and removed once it is done, so a segment left unsent (an outage, a crash, a close
    that could not wait) is put when the cache is next opened with the object store.
    """

    def __init__(self, objects: Objects, folder: Path, final: Callable[[str], Path]) -> None:
        self._objects = objects
        self._folder = folder
        self._final = final
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._queued: dict[str, int] = {}  # key -> how many times it was added since put
        self.unsent = 0  # puts given up on since opened (their markers stay)
        folder.mkdir(exist_ok=True)
        self._thread = threading.Thread(target=self._serve, name="narrator-objects", daemon=True)
        self._thread.start()
        left: list[str] = []  # what an earlier run left unsent
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            left = [e.name for e in entries if e.is_file(follow_symlinks=False)]
        for key in left:
            if _KEY.fullmatch(key):
                self._enqueue(key)

    @property
    def pending(self) -> int:
        """Segments waiting to be put."""
        with self._lock:
            return len(self._queued)

    def add(self, key: str) -> None:
        """``key``'s audio is in the cache: put it too."""
        marker = self._folder / key
        for _ in range(2):
            try:
                # Never through a link: the marker is a file of the cache's own.
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
                break
            except FileNotFoundError:  # `cache clear` took the folder
                self._folder.mkdir(exist_ok=True)
            except OSError:
                marker.unlink(missing_ok=True)  # a link in its place: the link goes
        self._enqueue(key)

    def _enqueue(self, key: str) -> None:
        with self._lock:
            again = key in self._queued
            self._queued[key] = self._queued.get(key, 0) + 1
        if not again:
            self._queue.put(key)

    def _serve(self) -> None:
        while (key := self._queue.get()) is not None:
            with self._lock:
                seen = self._queued.get(key, 0)
            done = False
            try:
                path = self._final(key)
                if not path.is_file():
                    done = True  # gone (pruned, set aside): nothing to put
                else:
                    self._objects.put(key, path)
                    done = True
            except AudioError as exc:
                log.warning("segment %s is not put to the object store: %s", key, exc)
                done = True  # the next lookup finds the file corrupt and makes it again
            except ObjectStoreError as exc:
                log.debug("segment %s not put yet: %s", key, exc)
                with self._lock:
                    self.unsent += 1
            except Exception as exc:  # a thread's last resort: the marker keeps it
                log.warning("segment %s not put to the object store: %r", key, exc)
            with self._lock:
                if self._queued.get(key, 0) != seen:  # added again meanwhile: once more
                    self._queued[key] -= seen
                    self._queue.put(key)
                else:
                    self._queued.pop(key, None)
                    if done:
                        (self._folder / key).unlink(missing_ok=True)
                self._lock.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the queue to empty; how many are left."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._queued and self._thread.is_alive():
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return len(self._queued)

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Put what is queued, waiting out an outage for up to ``timeout`` seconds (not at
        all once the store was interrupted: a stopping run), then each tried once more;
        the rest stays in the outbox for next time. A run that ends normally waits, so
        its segments are in the bucket for every machine, not in this cache alone."""
        self.drain(timeout)
        self._objects.interrupt()
        left = self.drain(timeout) + self.unsent
        self._queue.put(None)
        self._thread.join(timeout=1.0)
        if left:
            log.warning(
                "%d segments are not in the object store yet: they are put when this cache "
                "is next opened with it",
                left,
            )


class ReadThrough:
    """The object store behind one cache folder: a segment missing here is fetched from
    it (into ``tmp``, then placed with the check every segment passes), and a segment
    stored here is put there (:class:`Outbox`)."""

    def __init__(
        self, objects: Objects, files: CacheFiles, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.objects = objects
        self._files = files
        self._clock = clock
        self._missed: dict[str, float] = {}  # key -> when the bucket did not have it
        self.outbox = Outbox(objects, files.segments / "outbox", files.final)

    def fetch(self, key: str, *, known: bool) -> WavInfo | None:
        """Fetch ``key``'s audio into the cache; its header, or None (not in the bucket, or
        not usable: reported). ``known``: a row says it was made, so a miss is reported
        and never remembered (a row made moments ago elsewhere is worth asking about)."""
        if not _KEY.fullmatch(key):
            return None  # not a key narrator makes (a crafted row's): never an object name
        now = self._clock()
        if not known and now - self._missed.get(key, -MISS_MEMORY) < MISS_MEMORY:
            return None  # asked a moment ago (a look, a claim, a second look)
        temp = self._files.temp(key)
        try:
            if not self.objects.get(key, temp):
                if known:
                    log.warning(
                        "segment %s is done in the store but neither in this cache nor in "
                        "the object store: it is made again",
                        key,
                    )
                else:
                    if len(self._missed) > 10_000:
                        self._missed.clear()
                    self._missed[key] = now
                return None
            return place(temp, self._files.final(key), None)
        except AudioError as exc:
            log.warning("segment %s in the object store is not usable (%s): not used", key, exc)
            return None
        finally:
            temp.unlink(missing_ok=True)

    def stored(self, key: str) -> None:
        """``key``'s audio was just placed in the cache."""
        self._missed.pop(key, None)
        self.outbox.add(key)

    def interrupt(self) -> None:
        self.objects.interrupt()

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        self.outbox.close(timeout)
