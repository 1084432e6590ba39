"""Disk space: tell a full disk from other write errors, and check for room before a run.

A full disk (``ENOSPC``) or an exhausted quota (``EDQUOT``) is not a failure of one chunk
or one book: every later write fails the same way. So it stops the run (no new
requests, what is finished is kept) with one line naming the folder and what the rest
needs, instead of failing chunk after chunk, or waiting on a worker that died.

The sizes are estimates from the text: services send 24 kHz 16-bit mono WAV, and speech
runs at about 14 characters a second, so a billing character is about 3.4 kB of WAV.
:data:`BYTES_PER_CHAR` rounds that up, so a check errs towards asking for room.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from ..errors import AudioError, DiskFull

__all__ = ["BYTES_PER_CHAR", "check_room", "disk_full", "free_bytes", "is_disk_full"]

BYTES_PER_CHAR = 4_000  # 24 kHz x 2 bytes / ~12 characters a second, rounded up
_FULL = (errno.ENOSPC, errno.EDQUOT)
# What ffmpeg and SQLite say when a write hits a full disk (they report no errno to us).
_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "database or disk is full")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a write that failed for want of space."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        if isinstance(exc, (sqlite3.OperationalError, AudioError)) and any(
            word in str(exc) for word in _FULL_WORDS
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (an output folder may not exist yet)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_bytes(folder: Path) -> int:
    """Bytes free for us on the filesystem that holds ``folder``."""
    return shutil.disk_usage(_existing(folder)).free


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def disk_full(folder: Path, needed: int | None = None, *, before: bool = False) -> DiskFull:
    """The error for a full ``folder``, saying how much room the rest of the run needs."""
    try:
        free = free_bytes(folder)
    except OSError:
        free = None
    have = f"{_mb(free)} free" if free is not None else "no room"
    rest = f"; the rest of this run needs about {_mb(needed)} there" if needed else ""
    if before:
        message = (
            f"not enough space in {folder}: {have}, and this run needs about {_mb(needed or 0)} "
            "there (an estimate from the text); free some space or choose another "
            "folder (--cache-dir, -o); nothing was sent"
        )
    else:
        message = f"disk full: {folder} ({have}){rest}; free some space there"
    return DiskFull(message, folder=str(folder), needed=needed)


def check_room(needs: Mapping[Path, int]) -> None:
    """Raise :class:`DiskFull` before a run when a folder lacks the room it will need.

    Folders on one filesystem share its free space, so their needs are added up.
    """
    by_device: dict[int, tuple[Path, int]] = {}
    for folder, needed in needs.items():
        if needed <= 0:
            continue
        device = _existing(folder).stat().st_dev
        first, total = by_device.get(device, (folder, 0))
        by_device[device] = (first, total + needed)
    for folder, needed in by_device.values():
        if free_bytes(folder) < needed:
            raise disk_full(folder, needed, before=True)
