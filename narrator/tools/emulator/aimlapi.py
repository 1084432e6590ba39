"""The AIML API dialect: ``POST /v1/tts`` with model ``alibaba/qwen3-tts-flash``.

Errors are ``{"message", "path", "requestId", "statusCode", "timestamp"}``; credits
spent is 403. Success is 201 in one of three shapes: ``object`` (``{"audio": {"url"},
"usage": {"characters"}}``), ``string`` (``{"audio": url, "meta": {"usage":
{"credits_used", "usd_spent"}}}``) or ``binary`` (the WAV as the body).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...synth.espeakng import VOICES
from ...synth.providers import qwen
from ...synth.providers.aimlapi import AimlApiProvider
from ...util.registry import REGISTRY
from .dialect import Answer, Dialect, Reject, parse_object

__all__ = ["DIALECT", "MODEL"]

# The service's model and path, as the provider (and its registry entry) know them.
MODEL = REGISTRY["aimlapi"].model
PATH = AimlApiProvider.endpoint("")
_USD_PER_CHARACTER = 0.13 / 10_000  # illustrative only: the price is not published


def validate(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, billing characters) from a request body, or 400."""
    limit = limit or qwen.MAX_CHARS
    payload = parse_object(body)
    problems = []
    if payload.get("model") != MODEL:
        problems.append(f"model must be one of the following values: {MODEL}")
    text = payload.get("text")
    billing = 0
    if not isinstance(text, str):
        problems.append("text must be a string")
    else:
        billing = qwen.billing_chars(text)
        if billing < 1:
            problems.append("text must be longer than or equal to 1 characters")
        elif billing > limit:
            problems.append(
                f"text must be shorter than or equal to {limit} characters "
                f"(it counts {billing}: each Han character counts 2)"
            )
    voice = payload.get("voice")
    if not isinstance(voice, str) or voice not in VOICES:
        problems.append(f"voice must be one of the following values: {', '.join(VOICES)}")
    if problems:
        raise Reject(400, "; ".join(problems))
    assert isinstance(text, str) and isinstance(voice, str)
    return voice, text, billing


def error(
    status: int, code: str, message: str, path: str, request_id: str, headers: dict[str, str]
) -> web.Response:
    """The documented error body (``code`` is unused: this API has none)."""
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {
        "message": message,
        "path": path,
        "requestId": request_id,
        "statusCode": status,
        "timestamp": timestamp,
    }
    return web.json_response(body, status=status, headers=headers)


def success(answer: Answer) -> web.Response:
    """The audio in the answer's shape: a link in an object or a string, or the WAV itself."""
    status, headers = answer.status, answer.headers
    if answer.shape == "binary":
        return web.Response(
            status=status, body=answer.wav, content_type="audio/wav", headers=headers
        )
    url = answer.links.publish(answer.request, answer.wav)
    billing = answer.billing
    body: dict[str, Any]
    if answer.shape == "object":
        body = {"audio": {"url": url}, "usage": {"characters": billing}}
    else:
        usd = round(billing * _USD_PER_CHARACTER, 8)
        body = {"audio": url, "meta": {"usage": {"credits_used": billing, "usd_spent": usd}}}
    return web.json_response(body, status=status, headers=headers)


DIALECT = Dialect(
    name="aimlapi",
    path=PATH,
    refusals={
        "auth": (401, ""),
        "rate": (429, ""),
        "busy": (429, ""),
        "invalid": (400, ""),
        "credits": (403, ""),
        "server": (None, ""),
    },
    validate=validate,
    error=error,
    success=success,
)
