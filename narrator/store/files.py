"""The store's files: placing a checked segment atomically, stale temp files, and the
reserve, a small file of zeros, already allocated, into which the links of requests
already paid for are written in place when the disk is full (a resume then bills them
once). Writing over blocks the file already has needs no free space, so no other writer
on the disk can take that room first, as they could once the reserve was deleted."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..util.atomic import replace_synced, sync_file, write_synced
from ..util.wav import HEADER_PROBE, WavInfo, parse_wav, read_wav_info

__all__ = [
    "StoreInfo",
    "disk_usage",
    "keep_reserve",
    "links_in_reserve",
    "note_in_reserve",
    "place",
    "place_bytes",
    "sweep_temp",
]

STALE_TEMP_SECONDS = 3600.0  # older temp files belong to no live run
# Room kept on the cache's disk (a file of zeros) and given up when the disk fills, so the
# links of requests already paid for can still be written down: resume bills them once.
RESERVE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``narrator cache info`` shows."""

    root: Path
    states: dict[str, int]
    files: int
    bytes: int


def disk_usage(root: Path, segments: Path) -> tuple[int, int]:
    """(segment files, bytes of the segments and the database) under the cache ``root``."""
    files = size = 0
    for path in segments.glob("*/*.wav"):
        files += 1
        size += path.stat().st_size
    db_size = sum(p.stat().st_size for p in root.glob("narrator.sqlite3*"))
    return files, size + db_size


def sweep_temp(tmp: Path) -> None:
    """Delete the temp files no live run can still be writing."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for entry in tmp.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()


def keep_reserve(reserve: Path, tmp: Path) -> None:
    """Make the reserve file, unless it is there (or the disk has nothing to spare)."""
    with contextlib.suppress(OSError):  # a disk already full has nothing to spare
        if not reserve.exists():
            temp = tmp / f"reserve.{uuid.uuid4().hex[:8]}"
            try:
                with temp.open("wb") as fh:
                    fh.write(bytes(RESERVE_BYTES))  # real blocks, not a sparse file
                replace_synced(temp, reserve)
            finally:
                temp.unlink(missing_ok=True)


def note_in_reserve(reserve: Path, key: str, url: str, at: float) -> bool:
    """Write a link into the reserve's zeros, in place; False if there is no reserve or
    no room left in it (the caller then has nothing better than the database)."""
    line = f"{key}\t{at!r}\t{url}\n".encode()
    if b"\0" in line:
        return False
    try:
        with reserve.open("r+b") as fh:
            data = fh.read()
            end = data.find(b"\0")  # the notes so far end where the zeros start
            if end < 0 or end + len(line) > len(data):
                return False
            fh.seek(end)
            fh.write(line)  # over blocks the file has: no free space needed
            sync_file(fh)
    except OSError:
        return False
    return True


def links_in_reserve(reserve: Path) -> list[tuple[str, str, float]]:
    """The (key, url, noted at) links written into the reserve on a full disk."""
    try:
        data = reserve.read_bytes()
    except OSError:
        return []
    links = []
    for line in data.split(b"\0", 1)[0].decode(errors="replace").splitlines():
        key, at, url = [*line.split("\t", 2), "", ""][:3]
        with contextlib.suppress(ValueError):
            if key and url:
                links.append((key, url, float(at)))
    return links


def place(temp: Path, final: Path, check: Callable[[WavInfo], None] | None) -> WavInfo:
    info = read_wav_info(temp)  # raises AudioError for anything but whole PCM WAV
    if check is not None:
        check(info)
    final.parent.mkdir(exist_ok=True)
    # The bytes are synced before the rename, so the name never holds less than a whole
    # segment; the folder is not synced per segment (half the syncs): a power cut may
    # lose the rename, and a row whose file is missing is synthesized again (lookup).
    # A kill -9 loses neither: the kernel keeps both.
    replace_synced(temp, final, sync_folder=False)
    return info


def place_bytes(
    data: bytes, temp: Path, final: Path, check: Callable[[WavInfo], None] | None
) -> WavInfo:
    """:func:`place` for audio held in memory: checked from its bytes, written once."""
    info = parse_wav(data[:HEADER_PROBE], len(data), name=final.name)
    if check is not None:
        check(info)
    if not final.parent.is_dir():
        final.parent.mkdir(exist_ok=True)
    write_synced(data, temp, final)  # synced before the rename, as in place()
    return info
