"""OpenAI's speech endpoint, and every server that copies it (Kokoro-FastAPI, ...).

One request::

    POST {base}/v1/audio/speech
    {"model": "tts-1", "input": "...", "voice": "alloy", "response_format": "wav", "speed": 1.0}

The WAV is the response body (OpenAI streams it, so its header may give the length as
unknown; :mod:`narrator.util.wav` takes that). ``{base}`` may end in ``/v1``, as OpenAI
client libraries write it. The key is optional: local servers want none. Errors are
``{"error": {"message", "type", "code"}}`` (OpenAI) or ``{"detail": ...}`` (FastAPI);
a 429 whose code is ``insufficient_quota`` means the account is empty, not busy.
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
from ...util.registry import OPENAI_VOICES, Voice
from . import Audio
from .http import HttpProvider, error_code, error_message

__all__ = ["MAX_CHARS", "VOICES", "OpenAiProvider", "speech_endpoint"]


MAX_CHARS = 4096  # code points of ``input``

#: OpenAI's voices (the registry holds them, as data); --voice passes any name through.
VOICES: tuple[Voice, ...] = OPENAI_VOICES


def speech_endpoint(base_url: str) -> str:
    """``{base}/v1/audio/speech``, whether or not ``base_url`` already ends in ``/v1``."""
    base = base_url.rstrip("/")
    return base + ("/audio/speech" if base.endswith("/v1") else "/v1/audio/speech")


class OpenAiProvider(HttpProvider):
    """Client for ``POST /v1/audio/speech`` (OpenAI-compatible servers)."""

    name = "openai"
    max_chars = MAX_CHARS
    voices: tuple[Voice, ...] = VOICES

    def __init__(self, *, speed: float = 1.0, **options: Any) -> None:
        super().__init__(**options)
        self.speed = speed
        self.identity = f"{self.identity}|{speed:g}"

    @staticmethod
    def billing_chars(text: str, /) -> int:
        """Every code point counts 1 (OpenAI bills and limits ``input`` by characters)."""
        return len(text)

    endpoint = staticmethod(speech_endpoint)

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"X-Request-Id": request_id}
        if self._key:  # local servers want none
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def payload(self, text: str, voice: str) -> dict[str, object]:
        return {
            "model": self.model,
            "input": text,
            "voice": voice,
            "response_format": "wav",
            "speed": self.speed,
        }

    def parse_success(self, body: bytes) -> Audio:
        if body[:4] != b"RIFF":
            # Asking again would bring the same: the server ignores response_format.
            raise BadRequest(
                f"{self._endpoint} answered with something other than WAV "
                f"({body[:16]!r}); does the server support response_format=wav?"
            )
        return Audio(data=body)

    def error_for(self, status: int, body: bytes, retry_after: float | None) -> NarratorError:
        code, message = error_code(body), error_message(body, status)
        if status == 429 and code == "insufficient_quota":
            return OutOfCredits(f"the account is out of credits: {message}")
        if status == 429:
            return RateLimited(
                f"rate limited (429): {message}", status=status, retry_after=retry_after
            )
        if status == 401:
            return AuthError(f"the API key was rejected (401): {message}")
        if status == 403:
            return AuthError(f"access denied (403): {message}")
        if status == 404:
            return EndpointNotFound(f"answered 404 ({message}): check --base-url and --model")
        if status >= 500 or status == 408:
            return TransientError(
                f"service error {status}: {message}", status=status, retry_after=retry_after
            )
        return BadRequest(f"the service refused the chunk ({status}): {message}", status=status)
