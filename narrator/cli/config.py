"""The settings file: defaults for any command-line option, read from ``narrator.toml``.

Keys are option names without the dashes (``voice``, ``rpm``, ``concurrency``,
``output``, ``gap_ms`` or ``gap-ms``...); values are checked and converted exactly as
the command line's would be. Precedence is flags > file > built-in defaults: the file's
values become the parser's defaults, so a flag given on the command line still wins.
Secrets (any key naming a key, token, secret or password) are refused: they belong in
the environment or ``--api-key``, never in a file that gets shared or committed.
A file found in the current folder (rather than named with ``--config``) may come with a
downloaded project: what it may set is :mod:`narrator.util.trust`'s to say.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..util.trust import FLAGS, FROM_NO_FILE, TrustedFiles, digest, refuse_found, trusted_list

__all__ = [
    "CONFIG_NAME",
    "apply_config",
    "find_config",
    "load_config",
    "option_names",
    "vouch",
]


CONFIG_NAME = "narrator.toml"
_SECRET = re.compile(r"key|token|secret|password", re.IGNORECASE)
# Flags that only the person at the command line may give (the trust model's): a
# settings file must not be able to vouch for itself or lift a guard.
_NOT_FROM_FILE = frozenset(
    {"help", *(name for name, kind in FLAGS.items() if kind in FROM_NO_FILE)}
)


def find_config(explicit: str | None, folder: Path) -> Path | None:
    """``explicit`` (which must exist), else ``narrator.toml`` in ``folder`` if there is one."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config {explicit}: no such file")
        return path
    candidate = folder / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: Path) -> tuple[dict[str, Any], str]:
    """The file's settings and its content's digest (what a confirmation remembers);
    :class:`ConfigError` for unreadable or invalid TOML."""
    try:
        data = path.read_bytes()
        return tomllib.loads(data.decode("utf-8")), digest(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc


def option_names(parser: argparse.ArgumentParser) -> set[str]:
    """The destinations of every optional flag of ``parser``."""
    return {a.dest for a in parser._actions if a.option_strings} - _NOT_FROM_FILE


def apply_config(
    parser: argparse.ArgumentParser,
    values: Mapping[str, Any],
    *,
    source: str,
    known_elsewhere: Collection[str] = (),
) -> None:
    """Make the file's ``values`` the defaults of ``parser``'s options.

    A key that another command knows (``known_elsewhere``) is ignored here; a key no
    command knows, a secret, or a value the flag would refuse is a :class:`ConfigError`.
    """
    # argparse has no public way to list a parser's options; _actions is stable since 2.7.
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    defaults: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if _SECRET.search(key):
            raise ConfigError(
                f"{source}: {raw_key}: secrets are not read from the settings file; set the "
                "provider's environment variable (e.g. AIMLAPI_KEY) or pass --api-key"
            )
        if key in _NOT_FROM_FILE or (key not in actions and key not in known_elsewhere):
            raise ConfigError(f"{source}: unknown setting {raw_key!r}")
        if key in actions:
            defaults[key] = _convert(actions[key], value, f"{source}: {raw_key}")
    parser.set_defaults(**defaults)


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false")
        return value  # the key names the destination, so its value is the value
    if action.nargs in ("*", "+") or isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(action, item, where) for item in items]
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, (bool, list, dict)):
        raise ConfigError(f"{where}: expected a single value, got {value!r}")
    text = str(value)
    try:
        converted = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc or 'invalid value'} ({value!r})") from exc
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return converted


def vouch(
    path: Path,
    settings: dict[str, Any],
    sha: str,
    effective: set[str],
    *,
    named: bool,
    confirmed: bool,
    env: Mapping[str, str],
) -> str:
    """Where the file's settings come from, in words; refuses what a found file that
    the user has not confirmed may not set (:func:`narrator.util.trust.refuse_found`).
    ``effective``: the options whose value the file changed."""
    if named:
        return f"--config {path}"
    trusted = TrustedFiles(trusted_list(env))
    if confirmed:
        try:
            trusted.remember(path, sha)
        except OSError as exc:
            print(f"narrator: cannot remember that {path} is trusted ({exc})", file=sys.stderr)
        return f"{path}, trusted with --trust-settings"
    if trusted.trusted(path, sha):
        return f"{path}, trusted before with --trust-settings"
    refuse_found(path, settings, effective)
    return str(path)
