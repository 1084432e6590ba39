"""Text from elsewhere made safe to show and to store.

A service's error message, a page's title or a tag given on the command line can carry
terminal escape sequences (which repaint or hide what the terminal shows), other
control characters (which XML forbids) and megabytes of text. Everything such text
reaches — the terminal, the JSON report, tags, the podcast feed — goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MESSAGE_LIMIT", "REDACTED", "clean_line", "redact", "redact_bytes", "strip_controls"]


# ANSI/VT escape sequences whole (CSI ... final byte, OSC ... BEL or ST, two-byte ESC x),
# so no "[31m" is left behind once the ESC itself is gone.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 and C1 controls, DEL, and the bidirectional overrides that make text read backwards.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+")
MESSAGE_LIMIT = 300  # characters of a service's message worth showing
REDACTED = "[redacted]"
# What a credential looks like when a service echoes a request back: the value of an
# Authorization header or an api-key field, a Bearer/Basic token, an ``sk-`` key. A value
# is a run of 8+ token characters holding a digit, as keys do and words do not.
_VALUE = r"""(?=[^\s"',;}\]]*\d)[^\s"',;}\]]{8,}"""
_CREDENTIALS = re.compile(
    rf"""(?ix)
    (?P<scheme>\b(?:bearer|basic)\s+){_VALUE}
    | (?P<field>\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_ ]?key|\baccess[-_]?token)
      (?P<sep>["']?\s*[:=]\s*["']?){_VALUE}
    | \bsk-[a-z0-9][a-z0-9_-]{{7,}}
    """
)


def strip_controls(text: str) -> str:
    """``text`` without escape sequences and control characters (each run becomes a space)."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", text))


def redact(text: str, *, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each of ``secrets`` (an API key) and anything shaped like a
    credential (an Authorization header's value, a Bearer token, an ``sk-`` key) replaced
    by :data:`REDACTED`: what a service echoes of a request must not reach a terminal,
    a log, a report or the store."""
    for secret in secrets:
        if secret and len(secret) >= 4:  # a shorter "key" would blank ordinary words
            text = text.replace(secret, REDACTED)
    return _CREDENTIALS.sub(_keep_label, text)


def redact_bytes(data: bytes, *, secrets: Iterable[str | None]) -> bytes:
    """``data`` (a service's answer, before it is parsed) with each of ``secrets``
    replaced by :data:`REDACTED`; the shapes :func:`redact` knows are left to it."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            data = data.replace(secret.encode(), REDACTED.encode())
    return data


def _keep_label(found: re.Match[str]) -> str:
    if found["scheme"]:
        return found["scheme"] + REDACTED
    if found["field"]:
        return found["field"] + found["sep"] + REDACTED
    return REDACTED


def clean_line(text: str, *, limit: int = MESSAGE_LIMIT, secrets: Iterable[str | None] = ()) -> str:
    """One line of at most ``limit`` characters: controls gone, white space collapsed,
    credentials redacted (:func:`redact`)."""
    line = " ".join(redact(strip_controls(text[: limit * 4]), secrets=secrets).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
