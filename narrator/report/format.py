"""Values as the report page writes them: escaped for HTML (every value goes through
:func:`esc`, in one place, control characters shown as escapes first) and times as a
clock."""

from __future__ import annotations

import html

from ..util.sanitize import shown

# Shared by the page and its charts only; nothing here is for use elsewhere.
__all__: list[str] = []


def esc(value: object) -> str:
    return html.escape(shown(str(value)), quote=True)


def as_clock(seconds: float) -> str:
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
