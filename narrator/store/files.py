"""The store's files: where each segment's audio lives (and the one check every path
read from the database passes), placing a checked segment atomically, stale temp files,
and the reserve, a small file of zeros, already allocated, into which the links of requests
already paid for are written in place when the disk is full (a resume then bills them
once). Writing over blocks the file already has needs no free space, so no other writer
on the disk can take that room first, as they could once the reserve was deleted."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreRefused
from ..util.atomic import replace_synced, sync_file, write_synced
from ..util.wav import HEADER_PROBE, WavInfo, parse_wav, read_wav_info

__all__ = [
    "CacheFiles",
    "StoreInfo",
    "disk_usage",
    "keep_reserve",
    "links_in_reserve",
    "note_in_reserve",
    "place",
    "place_bytes",
    "refuse_links",
    "sweep_temp",
]

STALE_TEMP_SECONDS = 3600.0  # older temp files belong to no live run
# Room kept on the cache's disk (a file of zeros) and given up when the disk fills, so the
# links of requests already paid for can still be written down: resume bills them once.
RESERVE_BYTES = 512 * 1024

log = logging.getLogger("narrator")


class CacheFiles:
    """The cache folder's layout: ``segments/ab/abcdef....wav`` per key, ``segments/tmp/``
    for downloads in progress, ``segments/qa/`` for attempts set aside, and ``reserve``.

    The folder may have come from elsewhere (a cache shipped beside a document), so
    nothing here follows a link out of it: a link where narrator keeps its own folders
    or its reserve refuses the store, and a path read from a row is used only when
    :meth:`row_path` finds it inside.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.segments = root / "segments"
        self.tmp = self.segments / "tmp"
        self.qa = self.segments / "qa"
        self.reserve = root / "reserve"
        refuse_links(root)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._inside = self.segments.resolve()

    def final(self, key: str) -> Path:
        """Where ``key``'s audio goes; its folder is made a real one (a link is removed,
        never followed: its target is not the cache's)."""
        shard = self.segments / key[:2]
        if shard.is_symlink():
            shard.unlink()
        return shard / f"{key}.wav"

    def aside(self, key: str) -> Path:
        return self.qa / f"{key}.wav"

    def temp(self, key: str) -> Path:
        """A fresh temporary file name for a download of ``key``."""
        return self.tmp / f"{key}.{os.urandom(4).hex()}.part"

    def relative(self, path: Path) -> str:
        """``path`` as a row stores it (relative to the cache)."""
        return str(path.relative_to(self.root))

    def row_path(self, key: object, stored: object) -> Path | None:
        """The file a segment row of ``key`` names, if it may be used; None (reported in
        the log) if not. The one check every path read from the database passes: the row
        must name where this store puts ``key``'s audio, and that file, its links
        followed, must lie inside the cache's segments folder. A row naming ``../../x``,
        an absolute path, or a link out of the cache is never followed."""
        if isinstance(key, str) and isinstance(stored, str) and "\0" not in stored + key:
            path = self.segments / key[:2] / f"{key}.wav"
            if stored == self.relative(path):
                try:
                    resolved = path.resolve()
                except (OSError, RuntimeError):  # a loop of links
                    resolved = None
                if resolved is not None and resolved.is_relative_to(self._inside):
                    return path
        log.warning(
            "the store's row for segment %s names %s, outside this cache's segments: "
            "ignored (the segment is made again if needed)",
            ascii(key)[:80],
            ascii(stored)[:200],
        )
        return None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``narrator cache info`` shows."""

    root: Path
    states: dict[str, int]
    files: int
    bytes: int


def refuse_links(root: Path) -> None:
    """Refuse (:class:`~narrator.errors.StoreRefused`) a cache folder with a link where
    narrator keeps its own folders or its reserve: it would write or delete through it."""
    segments = root / "segments"
    for own in (segments, segments / "tmp", segments / "qa", root / "reserve"):
        if own.is_symlink():
            raise StoreRefused(
                f"{own} is a link: narrator keeps its own files there and follows no "
                "link out of its cache; it was left as it is (use another --cache-dir)"
            )


def disk_usage(segments: Path, database: Path | None) -> tuple[int, int]:
    """(segment files, bytes of the segments and the database file, if the database is
    one): only the cache's own files, no link followed."""
    files = size = 0
    for shard in _real_entries(segments, folders=True):
        for path in _real_entries(shard, folders=False):
            if path.suffix == ".wav":
                files += 1
                size += path.lstat().st_size
    if database is not None:
        for part in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                size += database.with_name(database.name + part).lstat().st_size
    return files, size


def _real_entries(folder: Path, *, folders: bool) -> list[Path]:
    """The folders (or regular files) in ``folder``, links left out."""
    found = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            wanted = entry.is_dir if folders else entry.is_file
            if wanted(follow_symlinks=False):
                found.append(Path(entry.path))
    return found


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
