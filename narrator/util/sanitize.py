"""Text from elsewhere made safe to show and to store.

A service's error message, a page's title or a tag given on the command line can carry
terminal escape sequences (which repaint or hide what the terminal shows), other
control characters (which XML forbids) and megabytes of text. Everything such text
reaches — the terminal, the JSON report, tags, the podcast feed — goes through here.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

__all__ = [
    "MESSAGE_LIMIT",
    "REDACTED",
    "clean_line",
    "masked_url",
    "redact",
    "redact_bytes",
    "shown",
    "storable",
    "storable_data",
    "strip_controls",
    "tag_text",
    "text_name",
]


# ANSI/VT escape sequences whole (CSI ... final byte, OSC ... BEL or ST, two-byte ESC x),
# so no "[31m" is left behind once the ESC itself is gone.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 and C1 controls, DEL, the bidirectional overrides that make text read backwards, and
# U+FFFE/U+FFFF (no XML document may hold them).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]+")
# What a terminal must not be handed raw: the controls above, and the lone surrogates a
# file name that is not UTF-8 decodes to (``os.fsdecode`` turns byte 0xff into U+DCFF).
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
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
    """``text`` without escape sequences and control characters (each run becomes a space),
    the bytes of a name that is not UTF-8 written as ``\\xff``: text any XML may hold."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", storable(text)))


def tag_text(text: str) -> str:
    """A tag's or a chapter title's value: :func:`strip_controls`, white space collapsed."""
    return " ".join(strip_controls(text).split())


def redact(text: str) -> str:
    """``text`` with anything shaped like a credential (an Authorization header's value,
    a Bearer token, an ``sk-`` key) replaced by :data:`REDACTED`: what a service echoes
    of a request must not reach a terminal, a log, a report or the store. The key itself,
    whatever its shape, is taken out of the answer first (:func:`redact_bytes`)."""
    return _CREDENTIALS.sub(_keep_label, text)


def redact_bytes(data: bytes, *, secrets: Iterable[str | None]) -> bytes:
    """``data`` (a service's answer, before it is parsed) with each of ``secrets`` (the
    API key) replaced by :data:`REDACTED`; the shapes :func:`redact` knows are left to it.
    A "key" shorter than 4 characters is left alone: it would blank ordinary words."""
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


def clean_line(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """One line of at most ``limit`` characters: controls gone, white space collapsed,
    credentials redacted (:func:`redact`)."""
    line = " ".join(redact(strip_controls(text[: limit * 4])).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def shown(text: str) -> str:
    """``text`` as a terminal or a log line may show it: every control character and
    every byte of a file name that is not UTF-8 written as an escape (``\\x1b``,
    ``\\n``, ``\\xff``), everything else as it is.

    What narrator prints of a document, a file name, a title or a service's words goes
    through here, so no name can clear the screen, set the window's title, write the
    clipboard or forge a line of output.
    """
    return _UNSHOWABLE.sub(_escape, text)


def storable(text: str) -> str:
    """``text`` with the bytes of a file name that is not UTF-8 written as ``\\xff``
    escapes: a string SQLite, a UTF-8 report or an XML feed can hold (the rest as is)."""
    return _SURROGATES.sub(_escape, text)


def storable_data(data: object) -> object:
    """``data`` (dicts, lists, strings, numbers: what JSON holds) with every string, keys
    too, made :func:`storable`."""
    if isinstance(data, str):
        return storable(data)
    if isinstance(data, dict):
        return {storable_data(k): storable_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [storable_data(v) for v in data]
    return data


def text_name(name: str) -> str:
    """A file name made wholly of printable text, for a name narrator writes (an
    audiobook named after an input): bytes that are not UTF-8 become U+FFFD, controls
    and escape sequences a space."""
    return strip_controls(_SURROGATES.sub("\ufffd", name))


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_PASSWORD_PARAM = re.compile(r"(?i)((?:^|[?&;\s])password=)[^&;\s]*")


def masked_url(url: str) -> str:
    """A service URL (a store, a queue) as a log line or an error may show it: its
    password, in the address (``user:PASSWORD@host``) or as a ``password=`` parameter,
    replaced by ``***``; control characters escaped (:func:`shown`). One that does not
    parse keeps its scheme only."""
    if "://" not in url:  # a libpq "host=... password=..." string, or not a URL at all
        return shown(_PASSWORD_PARAM.sub(r"\1***", url))
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here, as a bad host does
    except ValueError:
        return shown(url.partition("://")[0]) + "://…"
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        where = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{where}"
    query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
    return shown(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
