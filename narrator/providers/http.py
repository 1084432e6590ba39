"""HTTP pieces every networked provider shares: audio downloads, Retry-After, error bodies."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import aiofiles
import aiohttp

from ..audio import read_wav_info
from ..errors import (
    AudioError,
    BadDownload,
    BadRequest,
    ConnectFailed,
    LinkExpired,
    TransientError,
)

_BLOCK = 64 * 1024


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_message(body: bytes, status: int) -> str:
    """The service's own words from an error body, else the status."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return text[:200] if text else f"HTTP {status}"
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]  # OpenAI: {"error": {"message", "type", "code"}}
    message = data.get("message") if isinstance(data, dict) else None
    if not message and isinstance(data, dict):
        message = data.get("detail")  # FastAPI servers (Kokoro-FastAPI, ...)
        if isinstance(message, dict):
            message = message.get("message") or message.get("error")
        elif isinstance(message, list):  # 422: [{"loc", "msg", "type"}, ...]
            message = [m.get("msg", m) if isinstance(m, dict) else m for m in message]
    if isinstance(message, list):  # validation errors come as a list of strings
        message = "; ".join(str(m) for m in message)
    return str(message) if message else f"HTTP {status}"


def error_code(body: bytes) -> str:
    """The machine-readable code of an error body (DashScope ``code``, OpenAI
    ``error.code`` or ``error.type``), else ``""``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("error"), dict):
        data = data["error"]
    code = data.get("code") or data.get("type")
    return code if isinstance(code, str) else ""


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, object],
    *,
    headers: Mapping[str, str],
    timeout: float,
) -> tuple[int, bytes, float | None]:
    """POST ``payload`` as JSON: (status, body, Retry-After seconds).

    A failure on the wire, or no answer in ``timeout`` seconds, is a ``TransientError``.
    """
    try:
        async with session.post(
            url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            return resp.status, await resp.read(), parse_retry_after(resp.headers)
    except aiohttp.ClientConnectorError as exc:
        # Name the address: "ClientConnectorError" alone does not say which one is wrong.
        where = f"{exc.host}:{exc.port}"
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            why = "no such host"
        else:
            code = getattr(exc.os_error, "errno", None)
            why = os.strerror(code) if isinstance(code, int) else str(exc.os_error)
        raise ConnectFailed(
            f"cannot connect to {where} ({why.lower()}): check --base-url", where=where
        ) from exc
    except aiohttp.ClientError as exc:
        raise TransientError(f"request failed: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise TransientError("request timed out") from exc


async def download(
    session: aiohttp.ClientSession, url: str, dest: Path, *, max_bytes: int, timeout: float
) -> None:
    """Stream the WAV at ``url`` into ``dest`` and check it is whole RIFF/WAVE PCM.

    The signed link carries its own credentials, so no Authorization header is sent.
    """
    if not url.startswith(("http://", "https://")):
        raise BadRequest(f"refusing to download audio from a non-HTTP link: {url[:60]!r}")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status in (403, 404):
                raise LinkExpired(f"audio link answered {resp.status}", status=resp.status)
            if resp.status != 200:
                raise TransientError(f"audio download answered {resp.status}", status=resp.status)
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise BadRequest(
                    f"audio segment of {resp.content_length} bytes exceeds the {max_bytes}-byte cap"
                )
            size = 0
            async with aiofiles.open(dest, "wb") as fh:
                async for block in resp.content.iter_chunked(_BLOCK):
                    size += len(block)
                    if size > max_bytes:
                        raise BadRequest(f"audio segment exceeds the {max_bytes}-byte cap")
                    await fh.write(block)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise BadDownload(f"audio download cut short ({type(exc).__name__})") from exc
    except aiohttp.ClientError as exc:
        raise TransientError(f"audio download failed: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise TransientError("audio download timed out") from exc
    try:
        await asyncio.to_thread(read_wav_info, dest)
    except AudioError as exc:
        raise BadDownload(f"downloaded audio is unusable: {exc}") from exc


class HttpProvider:
    """What every networked provider shares: one lazily opened session, the endpoint,
    audio downloads, and a ``repr`` that leaves the key out."""

    name = "http"

    def __init__(
        self,
        *,
        api_key: str | None,
        endpoint: str,
        model: str,
        timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.model = model
        self._key = api_key
        self._endpoint = endpoint
        self._timeout = timeout
        self._session = session
        self._own_session = session is None  # a session passed in is the caller's to close

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, endpoint={self._endpoint!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> None:
        """Stream the audio at ``url`` into ``dest``; see :func:`download`."""
        await download(self.session, url, dest, max_bytes=max_bytes, timeout=self._timeout)

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None
