"""Alibaba Model Studio (DashScope), the native API of ``qwen3-tts-flash``.

One request::

    POST {base}/api/v1/services/aigc/multimodal-generation/generation
    {"model": "qwen3-tts-flash",
     "input": {"text": "...", "voice": "Cherry", "language_type": "English"}}

``{base}`` is ``https://dashscope-intl.aliyuncs.com`` (Singapore) or
``https://dashscope.aliyuncs.com`` (Beijing); the regions' keys differ. Success::

    {"request_id": "...",
     "output": {"finish_reason": "stop",
                "audio": {"url": "http://...wav?Expires=...", "id": "...",
                          "expires_at": 1761212494, "data": ""}},
     "usage": {"characters": 12}}

The audio is fetched from ``url`` (a signed link that lives about 24 hours), or taken
from ``data`` (base64 WAV) when the link is empty. Errors carry
``{"request_id", "code", "message"}``; the code decides (see :func:`_error_for`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ...chunks.language import script_language
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
from .http import HttpProvider, error_code, error_message, loads

__all__ = ["LANGUAGE_TYPES", "PATH", "DashScopeProvider", "language_type"]


PATH = "/api/v1/services/aigc/multimodal-generation/generation"

#: ``language_type`` for a language code (``--lang``); anything else is ``Auto``.
LANGUAGE_TYPES = {
    "zh": "Chinese",
    "cmn": "Chinese",
    "yue": "Chinese",
    "en": "English",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "fr": "French",
    "ru": "Russian",
}
# The script each non-Latin language_type is written in, as script_language names it.
_SCRIPTS = {"Chinese": "zh", "Japanese": "ja", "Korean": "ko", "Russian": "ru"}
_BY_SCRIPT = {script: language for language, script in _SCRIPTS.items()}


def language_type(lang: str | None, text: str) -> str:
    """The ``language_type`` to send for ``text`` when the document is in ``lang``.

    The document's language, unless the chunk's script says otherwise (an English
    quotation in a Chinese book, a Chinese book read with ``--lang en``): then ``Auto``,
    and the service tells the language itself. With no language given (``auto``), a
    chunk in Han, kana, Hangul or Cyrillic script is sent as that script's language.
    """
    configured = _configured(lang)
    script = script_language(text)
    if configured == "Auto":
        return _BY_SCRIPT.get(script, "Auto")
    if script != _SCRIPTS.get(configured, "en"):
        return "Auto"
    return configured


def _configured(lang: str | None) -> str:
    code = (lang or "").strip().lower().replace("_", "-").partition("-")[0]
    return LANGUAGE_TYPES.get(code, "Auto")


class DashScopeProvider(HttpProvider):
    """Client for DashScope's multimodal-generation endpoint (``qwen3-tts-flash``)."""

    name = "dashscope"
    success_statuses = (200,)
    max_chars = qwen.MAX_CHARS
    voices: tuple[Voice, ...] = qwen.VOICES
    billing_chars = staticmethod(qwen.billing_chars)  # a Han character counts 2

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # language_type changes the audio, so the document's language is part of it.
        self.identity = f"{self.identity}|{_configured(self.lang)}"

    @staticmethod
    def endpoint(base_url: str) -> str:
        return base_url.rstrip("/") + PATH

    def payload(self, text: str, voice: str) -> dict[str, object]:
        # DashScope has no client request id header; the shared X-Request-Id is harmless
        # and shows in proxies' logs.
        return {
            "model": self.model,
            "input": {
                "text": text,
                "voice": voice,
                "language_type": language_type(self.lang, text),
            },
        }

    def parse_success(self, body: bytes) -> Audio:
        try:
            data: Any = loads(body)
        except ValueError as exc:
            raise TransientError("DashScope answered success with no JSON") from exc
        output = data.get("output") if isinstance(data, dict) else None
        audio = output.get("audio") if isinstance(output, dict) else None
        if isinstance(audio, dict):
            url, inline = audio.get("url"), audio.get("data")
            if isinstance(url, str) and url:
                return Audio(url=url)
            if isinstance(inline, str) and inline:
                try:
                    return Audio(data=base64.b64decode(inline, validate=True))
                except (binascii.Error, ValueError) as exc:
                    raise TransientError("DashScope sent audio data that is not base64") from exc
        if error_code(body):  # an error dressed as a success
            raise _error_for(400, error_code(body), error_message(body, 200), None)
        raise TransientError("DashScope answered success without audio")

    def error_for(self, status: int, body: bytes, retry_after: float | None) -> NarratorError:
        return _error_for(status, error_code(body), error_message(body, status), retry_after)


def _error_for(status: int, code: str, message: str, retry_after: float | None) -> NarratorError:
    """DashScope's error code decides; the status is the fallback for unknown codes."""
    said = f"{message} ({code})" if code else message
    if code.startswith("Throttling") or status == 429:
        return RateLimited(f"rate limited: {said}", status=status, retry_after=retry_after)
    if code == "Arrearage":
        return OutOfCredits(f"the Alibaba Cloud account has an overdue balance: {said}")
    if code == "InvalidApiKey" or status == 401:
        return AuthError(f"the API key was rejected: {said}; DashScope keys work in one region")
    if code.startswith("AccessDenied") or status == 403:
        return AuthError(
            f"access denied: {said}; check the model, Settings.region and the key's rights"
        )
    if code.startswith("InternalError") or status >= 500 or status == 408:
        return TransientError(
            f"service error {status}: {said}", status=status, retry_after=retry_after
        )
    if status == 404:
        return EndpointNotFound(
            f"DashScope answered 404 ({said}): check Settings.base_url and Settings.region"
        )
    return BadRequest(f"the service refused the chunk: {said}", status=status)
