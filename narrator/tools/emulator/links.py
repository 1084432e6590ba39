"""The signed audio links (object-storage style) and the audio kept behind them.

Links expire ``url_ttl`` seconds after they are issued (403, as object storage says); a
link with a wrong signature is 403 too, an unknown clip 404. Clips are freed once their
link has expired, and the oldest go first past 256 MiB.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from .config import EmulatorConfig, EmulatorStats

__all__ = ["Core", "Links"]

_STORE_BYTES = 256 * 1024 * 1024  # audio held for links; the oldest goes first past this


class Core(Protocol):
    """What the links need of the emulator: its config, counters, clock and dice."""

    config: EmulatorConfig
    stats: EmulatorStats

    def now(self) -> float: ...

    def unix(self, now: float) -> float: ...

    def chance(self, rate: float) -> bool: ...


@dataclass(slots=True)
class _Stored:
    created: float
    wav: bytes


class _AudioStore:
    """Audio behind the signed links, oldest first, bounded in age and total size."""

    def __init__(self, ttl: float, max_bytes: int = _STORE_BYTES) -> None:
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0

    def put(self, wav: bytes, now: float) -> str:
        audio_id = uuid.uuid4().hex
        self._items[audio_id] = _Stored(now, wav)
        self._bytes += len(wav)
        self.purge(now)
        return audio_id

    def get(self, audio_id: str) -> _Stored | None:
        return self._items.get(audio_id)

    def purge(self, now: float) -> None:
        # Insertion order is creation order, so expired entries are all at the front.
        while self._items:
            oldest = next(iter(self._items.values()))
            if now - oldest.created <= self._ttl and self._bytes <= self._max_bytes:
                break
            self._bytes -= len(self._items.popitem(last=False)[1].wav)


class Links:
    """Publishes audio behind signed links and serves ``GET /audio/<id>.wav``."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._secret = secrets.token_bytes(16)
        self._store = _AudioStore(core.config.url_ttl)

    def purge(self, now: float) -> None:
        """Free the audio whose links have expired (and the oldest, past the size bound)."""
        self._store.purge(now)

    def expires_at(self) -> int:
        """The unix time a link issued now stops working."""
        core = self._core
        return int(core.unix(core.now()) + core.config.url_ttl)

    def _sign(self, audio_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{audio_id}\n{expires}".encode(), "sha256").hexdigest()

    def publish(self, request: web.Request, wav: bytes) -> str:
        """Keep ``wav`` and return its signed link, on the origin ``request`` came to."""
        core = self._core
        now = core.now()
        audio_id = self._store.put(wav, now)
        expires = str(int(core.unix(now) + core.config.url_ttl))
        signature = self._sign(audio_id, expires)
        return (
            f"{request.url.origin()}/audio/{audio_id}.wav"
            f"?Expires={expires}&OSSAccessKeyId=emulator&Signature={signature}"
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET /audio/<id>.wav``: the audio, or an object-storage style refusal."""
        core = self._core
        core.stats.downloads += 1
        now = core.now()
        self._store.purge(now)
        name = request.match_info["name"]
        audio_id = name.removesuffix(".wav")
        expires = request.query.get("Expires", "")
        signed = hmac.compare_digest(
            self._sign(audio_id, expires), request.query.get("Signature", "")
        )
        item = self._store.get(audio_id) if name.endswith(".wav") else None
        if item is None:
            # Purged for age: a link we signed whose Expires has passed.
            if signed and expires.isdigit() and core.unix(now) >= int(expires):
                return _oss_error(403, "AccessDenied", "Request has expired.")
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if not signed:
            return _oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if now - item.created > core.config.url_ttl:
            return _oss_error(403, "AccessDenied", "Request has expired.")
        if core.chance(core.config.truncate_rate):
            core.stats.truncated += 1
            return await _truncated(request, item.wav)
        core.stats.last_download = now
        return web.Response(body=item.wav, content_type="audio/wav")


def _oss_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        f"  <RequestId>{uuid.uuid4().hex.upper()[:24]}</RequestId>\n"
        "  <HostId>emulator</HostId>\n</Error>\n"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


async def _truncated(request: web.Request, wav: bytes) -> web.StreamResponse:
    """Promise the whole file, send half, hang up: what a broken download looks like."""
    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    response.content_length = len(wav)
    await response.prepare(request)
    await response.write(wav[: len(wav) // 2])
    # close() flushes what was written, then closes: the client gets a short body.
    request.protocol.force_close()
    return response
