"""HTTP pieces every networked provider shares: audio downloads, Retry-After, error bodies."""

from __future__ import annotations

import abc
import asyncio
import email.utils
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import aiofiles
import aiohttp

from ...errors import (
    AddressRefused,
    AudioError,
    AudioTooLarge,
    AuthError,
    BadDownload,
    ConnectFailed,
    LinkExpired,
    LinkRefused,
    NarratorError,
    TransientError,
)
from ...util import netpolicy
from ...util.netpolicy import NetPolicy
from ...util.registry import spec
from ...util.sanitize import clean_line, redact_bytes
from ...util.wav import HEADER_PROBE, parse_wav, read_wav_info
from . import Audio

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_JSON_ITEMS",
    "MAX_LINK_CHARS",
    "HttpProvider",
    "download",
    "error_code",
    "error_message",
    "loads",
    "parse_retry_after",
    "post_json",
]


_BLOCK = 64 * 1024
# The most the answer to a request may hold: a JSON body, or audio sent inline (base64
# makes it a third bigger than the 50 MB download cap). Read whole, so it is bounded.
MAX_ANSWER_BYTES = 72 * 1024 * 1024
# The most JSON values an answer may hold. A real one holds a few dozen; 72 MB of "{}," is
# 24 million objects, gigabytes once parsed. Audio sent inline is one string: one value.
MAX_JSON_ITEMS = 10_000
_STRUCTURE = (b"{", b"[", b",", b":")  # every value past the first needs one of these
MAX_LINK_CHARS = 16_384  # a signed audio link is a few hundred characters


def loads(body: bytes) -> object:
    """``body`` as JSON; ``ValueError`` for anything that is not, however it fails.

    The answer is bounded by what it holds, not only by its bytes: one holding more than
    :data:`MAX_JSON_ITEMS` values (or as many levels of nesting) is refused before it is
    parsed, by counting the marks that separate values (in C: 72 MB take milliseconds).
    Marks inside strings count too; no real answer comes near the bound. Nesting deep
    enough to make the parser raise RecursionError is refused the same way.
    """
    marks = sum(body.count(mark) for mark in _STRUCTURE)
    if marks > MAX_JSON_ITEMS:
        raise ValueError(f"the answer holds over {MAX_JSON_ITEMS:,} JSON values")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


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
    """The service's own words from an error body, else the status: one line of at most
    :data:`~narrator.util.sanitize.MESSAGE_LIMIT` characters, with no control characters."""
    return clean_line(_error_message(body, status)) or f"HTTP {status}"


def _error_message(body: bytes, status: int) -> str:
    try:
        data = loads(body)
    except ValueError:
        text = body[:4096].decode("utf-8", "replace").strip()
        return text if text else f"HTTP {status}"
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
        data = loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("error"), dict):
        data = data["error"]
    code = data.get("code") or data.get("type")
    return clean_line(code, limit=80) if isinstance(code, str) else ""


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, object],
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> tuple[int, bytes, float | None]:
    """POST ``payload`` as JSON: (status, body, Retry-After seconds).

    A failure on the wire, no answer in ``timeout`` seconds, or an answer over
    ``max_bytes`` (announced or not) is a ``TransientError``. A header aiohttp refuses
    to send (the key holds a line break, say) stops the run: every request would fail.
    """
    try:
        async with session.post(
            url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            too_big = f"the answer exceeds the {max_bytes:,}-byte cap"
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise TransientError(too_big, status=resp.status)
            body = bytearray()
            async for block in resp.content.iter_chunked(_BLOCK):
                body += block
                if len(body) > max_bytes:
                    raise TransientError(too_big, status=resp.status)
            return resp.status, bytes(body), parse_retry_after(resp.headers)
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
    except ValueError as exc:  # aiohttp checks header values as it writes them
        raise AuthError(
            "the request could not be sent: a header value is invalid "
            "(does the API key hold a line break or another control character?)"
        ) from exc


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    policy: NetPolicy | None = None,
    keep: int = 0,
) -> bytes | None:
    """Fetch the WAV at ``url`` and check it is whole RIFF/WAVE PCM.

    Audio of at most ``keep`` bytes comes back as bytes and nothing is written: a
    segment held in memory costs no thread hop per block, and the store writes it
    once. Longer audio is streamed into ``dest`` and None comes back.

    The signed link carries its own credentials, so no Authorization header is sent.
    Every hop of the link must pass ``policy`` (:mod:`narrator.util.netpolicy`), else the
    chunk fails with :class:`LinkRefused`.
    """
    if not url.startswith(("http://", "https://")):
        raise LinkRefused(f"refusing to download audio from a non-HTTP link: {url[:60]!r}")
    try:
        async with netpolicy.get(
            session, url, policy=policy or NetPolicy(), timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status in (403, 404):
                raise LinkExpired(f"audio link answered {resp.status}", status=resp.status)
            if resp.status != 200:
                raise TransientError(f"audio download answered {resp.status}", status=resp.status)
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise AudioTooLarge(
                    f"audio segment of {resp.content_length} bytes exceeds the {max_bytes}-byte cap"
                )
            kept = await _receive(resp, dest, max_bytes=max_bytes, keep=keep)
    except AddressRefused as exc:
        raise LinkRefused(f"the service's audio link: {exc}") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise BadDownload(f"audio download cut short ({type(exc).__name__})") from exc
    except aiohttp.ClientError as exc:
        raise TransientError(f"audio download failed: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise TransientError("audio download timed out") from exc
    try:
        if kept is None:
            await asyncio.to_thread(read_wav_info, dest)
        else:
            parse_wav(kept[:HEADER_PROBE], len(kept), name=dest.name)
    except AudioError as exc:
        raise BadDownload(f"downloaded audio is unusable: {exc}") from exc
    return kept


async def _receive(
    resp: aiohttp.ClientResponse, dest: Path, *, max_bytes: int, keep: int
) -> bytes | None:
    """The body, if at most ``keep`` bytes; else None, the body written to ``dest``."""
    size = 0
    blocks: list[bytes] = []  # joined once at the end: one allocation of the whole
    fh = None
    try:
        async for block in resp.content.iter_chunked(_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise AudioTooLarge(f"audio segment exceeds the {max_bytes}-byte cap")
            if fh is None and size <= keep:
                blocks.append(block)
                continue
            if fh is None:  # too long to hold: what came so far goes first
                fh = await aiofiles.open(dest, "wb")
                await fh.write(b"".join(blocks))
                blocks.clear()
            await fh.write(block)
    finally:
        if fh is not None:
            await fh.close()
    # Nothing written: the body is kept (with keep=0 it is empty, and so refused).
    return b"".join(blocks) if fh is None else None


class HttpProvider(abc.ABC):
    """What every networked provider shares: one lazily opened session, the endpoint,
    one request per chunk, audio downloads, and a ``repr`` that leaves the key out.

    A service says how to reach it (:meth:`endpoint`), what to send (:meth:`headers`,
    :meth:`payload`), which statuses are a success and what they hold
    (:meth:`parse_success`), and which error each failure is (:meth:`error_for`).
    Unset ``base_url`` and ``model`` are the registry's defaults for ``name``.
    """

    name = "http"
    success_statuses: tuple[int, ...] = (200, 201)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = "",
        model: str = "",
        lang: str | None = None,
        timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        network: NetPolicy | None = None,
    ) -> None:
        defaults = spec(self.name)
        self.model = model or defaults.model
        self.lang = lang
        self._key = api_key
        self._endpoint = self.endpoint(base_url or defaults.base_url())
        # Audio links may lead to the endpoint's own host, else only to public addresses.
        self._network = network or NetPolicy.make(endpoint=self._endpoint)
        self._timeout = timeout
        self._session = session
        self._own_session = session is None  # a session passed in is the caller's to close
        # Audio from another endpoint (the emulator, a proxy) must never be mistaken for this one's.
        self.identity = f"{self.name}|{self._endpoint}|{self.model}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, endpoint={self._endpoint!r})"

    @staticmethod
    @abc.abstractmethod
    def endpoint(base_url: str) -> str:
        """The URL one request goes to, from the API root."""

    def headers(self, request_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "X-Request-Id": request_id}

    @abc.abstractmethod
    def payload(self, text: str, voice: str) -> dict[str, object]:
        """The JSON body of one request."""

    @abc.abstractmethod
    def parse_success(self, body: bytes) -> Audio:
        """The audio (a link or the bytes) a successful answer carries."""

    @abc.abstractmethod
    def error_for(self, status: int, body: bytes, retry_after: float | None) -> NarratorError:
        """The error a failed answer is, a ``ProviderError`` or a ``StopRun`` (returned,
        for the caller to raise)."""

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        """One request; each service's module docstring says what comes back."""
        status, body, retry_after = await post_json(
            self.session,
            self._endpoint,
            self.payload(text, voice),
            headers=self.headers(request_id),
            timeout=self._timeout,
        )
        # What the service echoes of the request (the key, in an error that quotes the
        # headers) goes no further: messages, reports and the store all start here.
        body = redact_bytes(body, secrets=(self._key,))
        if status in self.success_statuses:
            audio = self.parse_success(body)
            if audio.url is not None and len(audio.url) > MAX_LINK_CHARS:
                # A link is stored with its segment and shown in errors: keep it a link.
                raise TransientError(
                    f"the service's audio link is {len(audio.url):,} characters long "
                    f"(at most {MAX_LINK_CHARS:,} are taken)"
                )
            return audio
        raise self.error_for(status, body, retry_after)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        """The audio at ``url``, in memory up to ``keep`` bytes, else in ``dest``; see
        :func:`download`."""
        return await download(
            self.session,
            url,
            dest,
            max_bytes=max_bytes,
            timeout=self._timeout,
            policy=self._network,
            keep=keep,
        )

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None
