"""The AIML API: ``POST /v1/tts`` with ``alibaba/qwen3-tts-flash`` (and same-shaped models).

Success is 200 or 201 in one of three shapes, all accepted::

    {"audio": {"url": "http://...wav?Expires=..."}, "usage": {"characters": 267}}
    {"audio": "<url>", "meta": {"usage": {"credits_used": N, "usd_spent": X}}}
    <the WAV itself>

The body's bytes decide which (RIFF magic or JSON), never the Content-Type.
"""

from __future__ import annotations

from typing import Any

from ...errors import (
    AuthError,
    BadRequest,
    EndpointNotFound,
    NarratorError,
    OutOfCredits,
    RateLimited,
    TransientError,
)
from . import Audio, Voice, qwen
from .http import HttpProvider, error_message, loads

__all__ = ["AimlApiProvider"]


class AimlApiProvider(HttpProvider):
    """Client for the AIML API's text-to-speech endpoint."""

    name = "aimlapi"
    # Other AIML TTS models with this request shape are accepted (--model); the limit and
    # the voices are those of the primary model.
    max_chars = qwen.MAX_CHARS
    voices: tuple[Voice, ...] = qwen.VOICES
    billing_chars = staticmethod(qwen.billing_chars)  # a Han character counts 2

    @staticmethod
    def endpoint(base_url: str) -> str:
        # The endpoint pasted whole as the base URL is taken as meant, not sent to
        # .../v1/tts/v1/tts for a 404.
        return base_url.rstrip("/").removesuffix("/v1/tts") + "/v1/tts"

    def headers(self, request_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "X-Client-Request-Id": request_id}

    def payload(self, text: str, voice: str) -> dict[str, object]:
        return {"model": self.model, "text": text, "voice": voice}

    def parse_success(self, body: bytes) -> Audio:
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

    def error_for(self, status: int, body: bytes, retry_after: float | None) -> NarratorError:
        message = error_message(body, status)
        if status == 400:
            return BadRequest(f"the service refused the chunk: {message}", status=status)
        if status == 401:
            return AuthError(f"the API key was rejected (401): {message}")
        if status == 403:
            return OutOfCredits(f"the account is out of credits (403): {message}")
        if status == 404:
            return EndpointNotFound(f"{self._endpoint} answered 404: check Settings.base_url")
        if status == 429:
            return RateLimited(
                f"rate limited (429): {message}", status=status, retry_after=retry_after
            )
        if status >= 500 or status == 408:
            return TransientError(
                f"service error {status}: {message}", status=status, retry_after=retry_after
            )
        return BadRequest(f"unexpected answer {status}: {message}", status=status)
