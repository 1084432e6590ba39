"""What an API dialect is made of: its route, refusal table, validator and answer shapes.

Each dialect module (:mod:`.aimlapi`, :mod:`.dashscope`, :mod:`.openai`) declares one
:class:`Dialect`; the server core (:mod:`.server`) routes the selected one and runs the
checks common to all (key, rate, concurrency, credits, faults) in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .links import Links

__all__ = [
    "REFUSAL_KINDS",
    "Answer",
    "Dialect",
    "ErrorShape",
    "Reject",
    "Validator",
    "parse_object",
]

# Every refusal a dialect must name a status and code for.
REFUSAL_KINDS = ("auth", "rate", "busy", "invalid", "credits", "server")


class Reject(Exception):
    """A request refused with an API error body; ``kind`` picks each API's status and code."""

    def __init__(self, status: int, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Answer:
    """A success to send, in the dialect's shape."""

    request: web.Request
    wav: bytes
    billing: int  # characters billed, counted the API's way
    shape: str  # object | string | binary ("mixed" already resolved)
    status: int  # 201 or 200 ("mixed" takes them in turn)
    headers: dict[str, str]
    links: Links  # publishes the audio behind a signed link


#: (body, max_characters or None for the documented limit) -> (voice, text, billing), or Reject.
Validator = Callable[[bytes, int | None], tuple[str, str, int]]
#: (status, code, message, path, request id, headers) -> the error response.
ErrorShape = Callable[[int, str, str, str, str, dict[str, str]], web.Response]


@dataclass(frozen=True, slots=True)
class Dialect:
    """One service's API as the emulator plays it."""

    name: str
    path: str  # the one route POSTed to
    # Each refusal kind's (status, code); a status of None keeps the one raised.
    refusals: Mapping[str, tuple[int | None, str]]
    validate: Validator
    error: ErrorShape
    success: Callable[[Answer], web.Response]
    keyless: bool = False  # with api_key=None, a request without a key is accepted
    # Voice names the service has that the engine reads with one of its (qwen-named) voices.
    engine_voices: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(REFUSAL_KINDS) - set(self.refusals)
        if missing:
            raise ValueError(f"dialect {self.name} has no refusal for {', '.join(sorted(missing))}")


def parse_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or 400."""
    try:
        payload = json.loads(body)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        raise Reject(400, "The request body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise Reject(400, "The request body must be a JSON object")
    return payload
