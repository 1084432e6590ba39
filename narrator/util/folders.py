"""Folders narrator will write to, checked before anything is sent or paid for.

A cache, report or output folder that cannot be written was found only when the first
file went there: after the requests were paid for, or (the report) after the book was
written, and as a traceback. Each is tried up front instead, by making a file in the
folder, or in the nearest existing folder above it when it is still to be made.

:func:`default_cache_dir` is the library's one read of the environment (like finding
``ffmpeg`` on ``PATH``): the library and the command line agree on where segments go.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError

__all__ = ["check_writable", "default_cache_dir", "output_folder"]


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/narrator``, else ``~/.cache/narrator``. ``env``: the
    environment to read (default: the process's)."""
    base = (os.environ if env is None else env).get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache") / "narrator"


def check_writable(folder: Path, *, what: str) -> None:
    """Raise a one-line :class:`ConfigError` naming ``what`` unless files can be made in
    ``folder`` (or it can be made). Nothing is left behind."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {folder}: cannot be made, {existing} is a file")
    try:
        # Unnamed where the system can (O_TMPFILE), else unlinked at once: a process
        # killed here leaves nothing in the user's folder.
        with tempfile.TemporaryFile(dir=existing, prefix=".narrator-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{what} {folder}: cannot write in {existing} ({reason})") from exc


def output_folder(out: str) -> Path:
    """The folder a ``-o`` value writes into: itself when it names a folder."""
    path = Path(out)
    return path if path.is_dir() or out.endswith(("/", os.sep)) else path.parent
