"""The AIML API: ``POST /v1/tts`` with ``alibaba/qwen3-tts-flash`` (and same-shaped models).

Success is 200 or 201 in one of three shapes, all accepted::

    {"audio": {"url": "http://...wav?Expires=..."}, "usage": {"characters": 267}}
    {"audio": "<url>", "meta": {"usage": {"credits_used": N, "usd_spent": X}}}
    <the WAV itself>

The body's bytes decide which (RIFF magic or JSON), never the Content-Type.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from ...errors import (
    AuthError,
    BadRequest,
    EndpointNotFound,
    OutOfCredits,
    RateLimited,
    TransientError,
)
from ...util.netpolicy import NetPolicy
from . import Audio, Voice, qwen
from .http import HttpProvider, error_message, loads, post_json


class AimlApiProvider(HttpProvider):
    """Client for the AIML API's text-to-speech endpoint."""

    name = "aimlapi"
    # Other AIML TTS models with this request shape are accepted (--model); the limit and
    # the voices are those of the primary model.
    max_chars = qwen.MAX_CHARS
    voices: tuple[Voice, ...] = qwen.VOICES

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.aimlapi.com",
        model: str = "alibaba/qwen3-tts-flash",
        timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        network: NetPolicy | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            endpoint=base_url.rstrip("/") + "/v1/tts",
            model=model,
            timeout=timeout,
            session=session,
            network=network,
        )
        # Audio from another endpoint (the emulator, a proxy) must never be mistaken for this one's.
        self.identity = f"{self.name}|{self._endpoint}|{model}"

    def billing_chars(self, text: str) -> int:
        """A Han character counts 2, as the upstream model counts it."""
        return qwen.billing_chars(text)

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        """One ``POST /v1/tts``; see the module docstring for what comes back."""
        headers = {"Authorization": f"Bearer {self._key}", "X-Client-Request-Id": request_id}
        payload = {"model": self.model, "text": text, "voice": voice}
        status, body, retry_after = await post_json(
            self.session, self._endpoint, payload, headers=headers, timeout=self._timeout
        )
        if status in (200, 201):
            return _parse_success(body)
        _raise_for(status, error_message(body, status), retry_after, self._endpoint)
        raise AssertionError("unreachable")  # _raise_for always raises


def _parse_success(body: bytes) -> Audio:
    if body[:4] == b"RIFF":
        return Audio(data=body)
    try:
        data: Any = loads(body)
    except ValueError as exc:
        raise TransientError("the service answered success with neither JSON nor WAV") from exc
    audio = data.get("audio") if isinstance(data, dict) else None
    if isinstance(audio, dict):
        audio = audio.get("url")
    if isinstance(audio, str) and audio:
        return Audio(url=audio)
    raise TransientError("the service answered success without an audio URL")


def _raise_for(status: int, message: str, retry_after: float | None, endpoint: str) -> None:
    if status == 400:
        raise BadRequest(f"the service refused the chunk: {message}", status=status)
    if status == 401:
        raise AuthError(f"the API key was rejected (401): {message}")
    if status == 403:
        raise OutOfCredits(f"the account is out of credits (403): {message}")
    if status == 404:
        raise EndpointNotFound(f"{endpoint} answered 404: check --base-url")
    if status == 429:
        raise RateLimited(f"rate limited (429): {message}", status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        raise TransientError(
            f"service error {status}: {message}", status=status, retry_after=retry_after
        )
    raise BadRequest(f"unexpected answer {status}: {message}", status=status)
