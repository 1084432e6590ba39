"""The DashScope dialect: ``POST {dashscope.PATH}`` with model ``qwen3-tts-flash``.

The body is ``{"model", "input": {"text", "voice", "language_type"}}``. Errors are
``{"request_id", "code", "message"}``: 401 ``InvalidApiKey``, 429
``Throttling.RateQuota`` / ``Throttling.AllocationQuota``, 400 ``InvalidParameter``,
400 ``Arrearage`` (credits spent), 5xx ``InternalError``. Success is 200 ``{"output":
{"audio": {"url", "id", "expires_at", "data"}}, "usage"}``; the ``binary`` shape puts
the WAV in ``data`` (base64) and leaves ``url`` empty.
"""

from __future__ import annotations

import base64
import uuid

from aiohttp import web

from ...synth.espeakng import VOICES
from ...synth.providers import dashscope, qwen
from ...util.registry import REGISTRY
from .dialect import Answer, Dialect, Reject, parse_object

__all__ = ["DIALECT", "LANGUAGES", "MODEL"]

MODEL = REGISTRY["dashscope"].model  # the provider's default, the one the service has
LANGUAGES = (
    "Auto", "Chinese", "English", "German", "Italian", "Portuguese", "Spanish", "Japanese",
    "Korean", "French", "Russian",
)  # fmt: skip


def validate(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, billing characters) from a DashScope request, or 400 InvalidParameter."""
    limit = limit or qwen.MAX_CHARS
    payload = parse_object(body)
    if payload.get("model") != MODEL:
        raise Reject(400, f"Model not exist: {payload.get('model')!r}")
    given = payload.get("input")
    if not isinstance(given, dict):
        raise Reject(400, "input must be an object with text and voice")
    text, voice = given.get("text"), given.get("voice")
    if not isinstance(text, str) or not text:
        raise Reject(400, "input.text must be a non-empty string")
    billing = qwen.billing_chars(text)
    if billing > limit:
        raise Reject(
            400,
            f"Range of input length should be [1, {limit}] "
            f"(it counts {billing}: each Han character counts 2)",
        )
    if not isinstance(voice, str) or voice not in VOICES:
        raise Reject(400, f"Voice {voice!r} is not supported; one of {', '.join(VOICES)}")
    language = given.get("language_type", "Auto")
    if language not in LANGUAGES:
        raise Reject(400, f"language_type must be one of {', '.join(LANGUAGES)}")
    return voice, text, billing


def error(
    status: int, code: str, message: str, path: str, request_id: str, headers: dict[str, str]
) -> web.Response:
    body = {"request_id": request_id, "code": code, "message": message}
    return web.json_response(body, status=status, headers=headers)


def success(answer: Answer) -> web.Response:
    """Always 200; the audio behind a link, or in ``data`` for the binary shape."""
    url, data = "", ""
    if answer.shape == "binary":
        data = base64.b64encode(answer.wav).decode()
    else:
        url = answer.links.publish(answer.request, answer.wav)
    body = {
        "request_id": answer.headers["x-inference-id"],
        "output": {
            "finish_reason": "stop",
            "audio": {
                "url": url,
                "id": f"audio_{uuid.uuid4().hex}",
                "expires_at": answer.links.expires_at(),
                "data": data,
            },
        },
        "usage": {"characters": answer.billing},
    }
    return web.json_response(body, status=200, headers=answer.headers)


DIALECT = Dialect(
    name="dashscope",
    path=dashscope.PATH,
    refusals={
        "auth": (401, "InvalidApiKey"),
        "rate": (429, "Throttling.RateQuota"),
        "busy": (429, "Throttling.AllocationQuota"),
        "invalid": (400, "InvalidParameter"),
        "credits": (400, "Arrearage"),
        "server": (None, "InternalError"),
    },
    validate=validate,
    error=error,
    success=success,
)
