"""Files that appear whole or not at all: the one way narrator writes what it keeps.

A file is written under a hidden temporary name beside its target, synced, renamed over
the target, and the folder is synced so the rename itself survives a crash. Until then
a reader sees the old file (or none), never half of the new one; on any error the
temporary file is removed and the old file is left as it was.

A process killed outright (``kill -9``, a power cut) removes nothing: its hidden names
carry its process id and host, so the next run writing the same target removes them
once that process is gone (:func:`sweep_leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_path",
    "atomic_write",
    "fsync_dir",
    "replace_synced",
    "running_here",
    "sweep_leftovers",
    "sync_file",
    "temp_beside",
    "write_synced",
]


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (POSIX only: Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(fh: BinaryIO) -> None:
    """Make what was written through ``fh`` durable, for the one write narrator does in
    place (links noted in the store's reserve on a full disk, where no new file fits)."""
    fh.flush()
    os.fsync(fh.fileno())


def _host() -> str:
    """This machine, in four hex digits: enough to tell a shared disk's writers apart."""
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"


def temp_beside(target: Path) -> Path:
    """A hidden, unused name in ``target``'s folder: a rename from it never crosses disks.

    It names this process (``.NAME.pPID-HOST-RANDOM.tmp``) so a later run can tell a
    killed writer's leftovers from a live one's; callers may change the ``.tmp`` suffix.
    """
    return target.with_name(f".{target.name}.p{os.getpid()}-{_host()}-{secrets.token_hex(4)}.tmp")


def running_here(pid: int) -> bool:
    """Whether process ``pid`` of this machine may still be running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, owned by someone else
    return True


def sweep_leftovers(target: Path) -> int:
    """Remove the hidden files beside ``target`` that a writer killed outright left
    (see :func:`temp_beside`): only this machine's, and only once their process is gone.
    Returns how many went; a file that cannot be removed is left, silently."""
    name = re.compile(rf"\.{re.escape(target.name)}\.p(\d+)-([0-9a-f]{{4}})-[0-9a-f]{{8}}\.")
    host, removed = _host(), 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    for entry in entries:
        found = name.match(entry.name)
        if found is None or found[2] != host or running_here(int(found[1])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def replace_synced(source: Path, target: Path, *, sync_folder: bool = True) -> None:
    """Sync ``source``'s bytes, rename it over ``target`` and sync ``target``'s folder
    (unless ``sync_folder`` is False: a power cut may then lose the rename, never leave
    a part of the file under the name)."""
    with source.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(source, target)
    if sync_folder:
        fsync_dir(target.parent)


def write_synced(data: bytes, temp: Path, target: Path) -> None:
    """Write ``data`` to the new file ``temp``, sync it and rename it over ``target``
    (the folder unsynced, as with ``replace_synced(sync_folder=False)``): one open, one
    sync. ``temp`` is removed if anything fails."""
    try:
        with temp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path to write ``target``'s new contents to (by any means: ffmpeg,
    a library's writer); it takes ``target``'s place when the block ends without error,
    and is removed otherwise."""
    tmp = temp_beside(target)
    try:
        yield tmp
        replace_synced(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when something failed


def atomic_write(target: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``target`` atomically; return ``target``.

    A target that is a device or a pipe (``/dev/stdout``) is written through, never
    replaced by a file.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if target.exists() and not target.is_file():
        with target.open("wb") as fh:
            fh.write(raw)
        return target
    with atomic_path(target) as tmp:
        # "x" never clobbers a file we did not create. Not mkstemp: its files are
        # private (0600), while open() leaves permissions to the umask as usual.
        with tmp.open("xb") as fh:
            fh.write(raw)
    return target
