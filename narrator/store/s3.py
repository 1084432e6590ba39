"""S3-compatible object storage: its URL, one client and the waiting every call goes
through, and books written under an ``s3://`` DEST (:func:`upload_book`).

The URL is ``s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=NAME`` (both optional:
without an endpoint, AWS's); credentials come only from boto3's own chain (the standard
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` environment, a profile, an instance
role), never from the URL: one with ``user:password@``, or any parameter but those two,
is refused in one line that does not echo it. boto3 is imported only when such a URL is
used, so a run on one machine never loads it.

An object store that cannot be reached (no connection, no answer, a 5xx or 429) is
waited for, with backoff: one log line ``waiting for the object store at HOST:PORT`` per
outage, however many threads wait, and one when it is back. Anything else it answers is
the caller's to translate (:meth:`Service.refused`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError, ObjectStoreError
from ..util.s3url import ObjectURL, is_s3_url, parse_url

__all__ = ["BACKOFF", "ObjectURL", "Service", "is_s3_url", "missing", "parse_url", "upload_book"]

log = logging.getLogger("narrator")

T = TypeVar("T")

_MAX_NAME = 1024  # bytes: S3's limit on an object name
# Seconds: the first wait for an object store out of reach, and the longest (so one back
# is noticed within that).
BACKOFF = (0.5, 10.0)


# --- the service: one client, its waits and its log lines ---------------------------------


class _Outage:
    """One log line when the object store stops answering, one when it is back, however
    many threads are waiting for it."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._down = False

    def down(self, why: str) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning("waiting for the object store at %s (%s)", self._where, why)

    def up(self) -> None:
        if not self._down:  # the usual case: no lock taken
            return
        with self._lock:
            was, self._down = self._down, False
        if was:
            log.warning("the object store at %s is back", self._where)


def _transient(exc: BaseException) -> str | None:
    """Why ``exc`` is worth waiting out (no connection, no answer, a 5xx), or None."""
    from botocore import exceptions as bc

    if isinstance(exc, bc.SSLError):
        return None  # a certificate does not fix itself
    if isinstance(exc, (bc.ConnectionError, bc.HTTPClientError, bc.IncompleteReadError)):
        return "no connection" if isinstance(exc, bc.ConnectionError) else "no whole answer"
    if isinstance(exc, bc.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or status == 429 or _code(exc) in ("SlowDown", "RequestTimeout"):
            return f"HTTP {status}"
    return None


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and _code(exc) in ("404", "NoSuchKey", "NotFound")


class Service:
    """One bucket on one S3 endpoint: the client, and the wait-and-retry every call goes
    through (no connection, no answer, 5xx and 429 are waited out; anything else is the
    caller's)."""

    def __init__(self, url: ObjectURL, *, backoff: tuple[float, float]) -> None:
        import boto3  # only here: a run without object storage never imports it
        from botocore.config import Config

        self.url = url
        self._base, self._max = backoff
        self._outage = _Outage(url.where)
        self._stop = threading.Event()
        config = Config(
            retries={"total_max_attempts": 1},  # the waiting is ours, with its log lines
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=8,
            # Plain Content-MD5 rather than the newer trailing checksums, which not every
            # S3-compatible server takes.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if url.endpoint else {},
        )
        region = url.region or ("us-east-1" if url.endpoint else None)
        session = boto3.session.Session()  # a session of its own: the default is not thread-safe
        self.client = session.client(
            "s3", endpoint_url=url.endpoint, region_name=region, config=config
        )

    def interrupt(self) -> None:
        """From any thread: stop waiting; a call waiting tries once more, and every later
        call is tried once."""
        self._stop.set()

    def call(self, op: Callable[[], T]) -> T:
        """``op()``, retried with backoff while the object store is out of reach."""
        from botocore.exceptions import NoCredentialsError

        delay = self._base
        while True:
            try:
                result = op()
            except NoCredentialsError as exc:
                raise ObjectStoreError(
                    f"no credentials for the object store at {self.url.where}: set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from exc
            except Exception as exc:
                why = _transient(exc)
                if why is None:
                    self._outage.up()  # it answered, if only to refuse
                    raise
                self._outage.down(why)
                if self._stop.is_set():  # tried once since the store began closing
                    raise ObjectStoreError(
                        f"the object store at {self.url.where} is out of reach ({why}); "
                        "what was not put stays in the cache and is put next time"
                    ) from exc
                self._stop.wait(delay * random.uniform(0.8, 1.2))  # cut short by a close
                delay = min(max(delay * 2, 0.01), self._max)
                continue
            self._outage.up()
            return result

    def refused(self, exc: Exception) -> ObjectStoreError:
        """A one-line error for an answer that is neither the object nor "no such object"."""
        code = _code(exc) or type(exc).__name__
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            why = "refused the credentials (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        elif code == "NoSuchBucket":
            why = f"has no bucket {self.url.bucket}"
        else:
            why = f"refused the request ({ascii(code)[:60]})"
        return ObjectStoreError(f"the object store at {self.url.where} {why}")

    def check_bucket(self) -> None:
        """Refuse (one line) credentials or a bucket the object store does not take."""
        from botocore.exceptions import ClientError

        try:
            self.call(lambda: self.client.head_bucket(Bucket=self.url.bucket))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise ObjectStoreError(
                    f"the object store at {self.url.where} has no bucket {self.url.bucket}"
                ) from exc
            raise self.refused(exc) from exc


# --- books written to an s3:// DEST -------------------------------------------------------


def _book_name(relative_name: str) -> list[str]:
    """The folders and name of a book under DEST, or :class:`InputError`: never out of
    the prefix (no '..', no absolute name), no control characters."""
    if (
        not isinstance(relative_name, str)
        or not relative_name
        or not relative_name.isprintable()
        or relative_name.startswith(("/", "\\"))
        or "\\" in relative_name
    ):
        raise InputError(f"{ascii(relative_name)[:100]}: not a book name under an s3:// DEST")
    parts = relative_name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(
            f"{ascii(relative_name)[:100]}: a book name under an s3:// DEST may not hold "
            "'.', '..' or an empty folder"
        )
    return parts


def upload_book(
    local_files: Sequence[Path],
    dest_url: str,
    relative_name: str,
    *,
    backoff: tuple[float, float] = BACKOFF,
) -> list[str]:
    """Put a book written locally (``local_files``: the book and its sidecars, side by
    side) under ``dest_url`` (``s3://BUCKET/PREFIX/?endpoint=...``) as
    ``relative_name``'s folder, each file keeping its own name; the ``s3://`` names
    written, in order. Large files go up in parts (boto3's ``upload_file``); an object
    store out of reach is waited for, as for segments. Raises :class:`InputError` for a
    name that would leave the prefix, :class:`ObjectStoreError` when refused."""
    url = parse_url(dest_url, setting="DEST")
    folders = _book_name(relative_name)[:-1]
    names = []
    for path in local_files:
        (file_name,) = _book_name(Path(path).name)
        names.append(url.name("/".join([*folders, file_name])))
    if len(set(names)) != len(names) or any(len(n.encode()) > _MAX_NAME for n in names):
        raise InputError(f"{ascii(relative_name)[:100]}: the book's files cannot be named")
    service = Service(url, backoff=backoff)
    service.check_bucket()  # some servers make a bucket a put names: never a mistyped one
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)
    written = []
    for path, name in zip(local_files, names, strict=True):

        def send(path: Path = Path(path), name: str = name) -> None:
            try:
                service.client.upload_file(str(path), url.bucket, name, Config=transfer)
            except S3UploadFailedError as exc:
                # upload_file wraps the client's errors: unwrap, so waiting sees them
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, (ClientError, BotoCoreError)):
                    raise cause from exc
                raise

        try:
            service.call(send)
        except (ClientError, BotoCoreError) as exc:
            raise service.refused(exc) from exc
        written.append(f"s3://{url.bucket}/{name}")
    return written
