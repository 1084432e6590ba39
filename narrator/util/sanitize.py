"""Text from elsewhere made safe to show and to store.

A service's error message, a page's title or a tag given on the command line can carry
terminal escape sequences (which repaint or hide what the terminal shows), other
control characters (which XML forbids) and megabytes of text. Everything such text
reaches — the terminal, the JSON report, tags, the podcast feed — goes through here.
"""

from __future__ import annotations

import re

__all__ = ["MESSAGE_LIMIT", "clean_line", "strip_controls"]


# ANSI/VT escape sequences whole (CSI ... final byte, OSC ... BEL or ST, two-byte ESC x),
# so no "[31m" is left behind once the ESC itself is gone.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 and C1 controls, DEL, and the bidirectional overrides that make text read backwards.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+")
MESSAGE_LIMIT = 300  # characters of a service's message worth showing


def strip_controls(text: str) -> str:
    """``text`` without escape sequences and control characters (each run becomes a space)."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", text))


def clean_line(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """One line of at most ``limit`` characters: controls gone, white space collapsed."""
    line = " ".join(strip_controls(text[: limit * 4]).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
