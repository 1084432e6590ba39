"""Counts in words: "1 document", "2 documents"."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural (``many``, else ``word`` + "s") unless 1."""
    return f"{count} {word if count == 1 else many or word + 's'}"
