"""The library's messages in the command line's words: ``Settings.base_url`` is
``--base-url`` to someone typing a command."""

from __future__ import annotations

import re

__all__ = ["as_flags", "flag_of"]

# Settings whose flag is not the setting's name with dashes.
_FLAGS = {"backoff_base": "--backoff"}
_SETTING = re.compile(r"\bSettings\.(?:audiobook\.)?([a-z_]+)")


def flag_of(setting: str) -> str:
    """The flag that sets ``setting`` (a :class:`~narrator.settings.Settings` field)."""
    name = setting.removeprefix("audiobook.")
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def as_flags(message: str) -> str:
    """``message`` with every ``Settings.name`` the library wrote replaced by its flag."""
    return _SETTING.sub(lambda found: flag_of(found.group(1)), message)
