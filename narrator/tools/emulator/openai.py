"""The OpenAI dialect: ``POST /v1/audio/speech``, the WAV as the body.

The body is ``{"model", "input" (1-4096 characters, each counting 1), "voice"
(OpenAI's names), "response_format": "wav", "speed"}``; the WAV's header gives its
length as unknown, as OpenAI's streamed WAVs do. Errors are ``{"error": {"message",
"type", "param", "code"}}``; credits spent is 429 ``insufficient_quota``. With
``api_key=None`` a request without a key is accepted, like a local server.
"""

from __future__ import annotations

from aiohttp import web

from ...synth.espeakng import VOICES
from ...synth.providers import openai
from .dialect import Answer, Dialect, Reject, parse_object

__all__ = ["DIALECT", "ENGINE_VOICES", "MODELS"]

MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
PATH = openai.speech_endpoint("")
# OpenAI's voice names, each read by one of the engine's (qwen-named) voices.
ENGINE_VOICES = dict(zip((v.name for v in openai.VOICES), VOICES, strict=False))
_TYPES = {
    "invalid_api_key": "invalid_request_error",
    "rate_limit_exceeded": "requests",
    "invalid_value": "invalid_request_error",
    "insufficient_quota": "insufficient_quota",
    "": "server_error",
}


def validate(body: bytes, limit: int | None = None) -> tuple[str, str, int]:
    """(voice, text, characters) from an OpenAI speech request, or 400."""
    limit = limit or openai.MAX_CHARS
    payload = parse_object(body)
    if payload.get("model") not in MODELS:
        raise Reject(400, f"model must be one of {', '.join(MODELS)}")
    text, voice = payload.get("input"), payload.get("voice")
    if not isinstance(text, str) or not text:
        raise Reject(400, "input must be a non-empty string")
    if len(text) > limit:
        raise Reject(400, f"input is {len(text)} characters; the maximum is {limit}")
    if not isinstance(voice, str) or voice not in ENGINE_VOICES:
        raise Reject(400, f"voice must be one of {', '.join(ENGINE_VOICES)}")
    # Without response_format the real service sends MP3, which this emulator cannot make.
    if payload.get("response_format") != "wav":
        raise Reject(400, "the emulator only makes response_format 'wav' (the default is mp3)")
    speed = payload.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4:
        raise Reject(400, "speed must be a number between 0.25 and 4.0")
    return voice, text, len(text)


def error(
    status: int, code: str, message: str, path: str, request_id: str, headers: dict[str, str]
) -> web.Response:
    body = {
        "error": {"message": message, "type": _TYPES[code], "param": None, "code": code or None}
    }
    return web.json_response(body, status=status, headers=headers)


def _streamed(wav: bytes) -> bytes:
    """The WAV with its sizes unknown (0xFFFFFFFF), as a streaming encoder writes it."""
    data = wav.find(b"data", 12)
    unknown = b"\xff\xff\xff\xff"
    return wav[:4] + unknown + wav[8 : data + 4] + unknown + wav[data + 8 :]


def success(answer: Answer) -> web.Response:
    """Always 200 with the WAV as the body, whatever the configured shape."""
    return web.Response(
        status=200, body=_streamed(answer.wav), content_type="audio/wav", headers=answer.headers
    )


DIALECT = Dialect(
    name="openai",
    path=PATH,
    refusals={
        "auth": (401, "invalid_api_key"),
        "rate": (429, "rate_limit_exceeded"),
        "busy": (429, "rate_limit_exceeded"),
        "invalid": (400, "invalid_value"),
        "credits": (429, "insufficient_quota"),
        "server": (None, ""),
    },
    validate=validate,
    error=error,
    success=success,
    keyless=True,
    engine_voices=ENGINE_VOICES,
)
