"""An ``s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=NAME`` URL, checked: pure
parsing, so settings can check one without the object store's client (store/s3.py).

Credentials never go in the URL (it is printed and logged): one with ``user:password@``,
or any parameter but ``endpoint=`` and ``region=``, is refused in one line that does not
echo it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError

__all__ = ["ObjectURL", "is_s3_url", "parse_url"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,40}")
_MAX_NAME = 1024  # bytes: S3's limit on an object name


@dataclass(frozen=True, slots=True)
class ObjectURL:
    """A parsed ``s3://`` URL; ``str()`` is its printable form (no credentials exist in it)."""

    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket's root
    endpoint: str | None  # scheme://host[:port]; None: AWS's own
    region: str | None

    @property
    def where(self) -> str:
        """host:port, as log lines name the object store."""
        if self.endpoint is None:
            return f"s3.amazonaws.com (bucket {self.bucket})"
        return self.endpoint.split("://", 1)[1]

    def name(self, relative: str) -> str:
        """The object name of ``relative`` under this URL's prefix."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        base = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        query = [f"endpoint={self.endpoint}"] if self.endpoint else []
        query += [f"region={self.region}"] if self.region else []
        return base + ("?" + "&".join(query) if query else "")


def is_s3_url(value: object) -> bool:
    """Whether ``value`` names object storage (``s3://...``) rather than a folder."""
    return isinstance(value, str) and value[:5].lower() == "s3://"


def parse_url(url: str, *, setting: str = "objects_url") -> ObjectURL:
    """Check an ``s3://BUCKET/PREFIX?endpoint=...&region=...`` URL; a one-line
    :class:`ConfigError` naming the fix otherwise. The URL is never echoed whole: it may
    hold what should have been a secret."""

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{setting}: {why}", setting=setting)

    if not isinstance(url, str) or not is_s3_url(url):
        raise refuse("expected s3://BUCKET/PREFIX?endpoint=http://HOST:PORT")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise refuse("the URL holds a space or a control character")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise refuse(
            "credentials do not go in the URL (it is printed and logged): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        )
    if parts.fragment:
        raise refuse("the URL has a #fragment; it takes none")
    if not _BUCKET.fullmatch(parts.netloc):
        raise refuse(
            f"{ascii(parts.netloc)[:70]} is not a bucket name (3-63 of a-z, 0-9, '.', '-')"
        )
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") or "\\" in s for s in segments):
        raise refuse("the prefix may not hold '.', '..' or a backslash")
    endpoint = region = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "endpoint" and endpoint is None:
            endpoint = _endpoint(value, refuse)
        elif name == "region" and region is None:
            if not _REGION.fullmatch(value):
                raise refuse("region= takes a region name (e.g. eu-west-1)")
            region = value
        else:  # only the name: a value here might have been meant as a secret
            raise refuse(
                f"unknown or repeated parameter {ascii(name)[:40]} (it takes endpoint= and region=)"
            )
    prefix = "/".join(segments)
    if len(prefix.encode()) > _MAX_NAME // 2:
        raise refuse("the prefix is too long")
    return ObjectURL(parts.netloc, prefix, endpoint, region)


def _endpoint(value: str, refuse: Callable[[str], ConfigError]) -> str:
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise refuse(
            "credentials do not go in the URL (it is printed and logged): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise refuse("endpoint= takes http://HOST:PORT or https://HOST[:PORT], nothing more")
    return f"{parts.scheme}://{parts.netloc}"
