"""narrator.util.atomic: files appear whole or not at all, and every writer goes through it."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest

from narrator.util.atomic import atomic_path, atomic_write, replace_synced

PACKAGE = Path(__file__).resolve().parent.parent / "narrator"


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    assert atomic_write(target, "new ✓") == target
    assert target.read_text(encoding="utf-8") == "new ✓"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "book.wav"
    target.write_bytes(b"the finished book")
    with pytest.raises(OSError, match="disk gone"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a bo")
        raise OSError("disk gone")
    assert target.read_bytes() == b"the finished book"
    assert [p.name for p in tmp_path.iterdir()] == ["book.wav"]


def test_a_failed_rename_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(tmp_path / "feed.xml", "<rss/>")
    assert list(tmp_path.iterdir()) == []


def test_replace_synced_moves_a_file_into_another_folder(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "segments").mkdir()
    source = tmp_path / "tmp" / "x.part"
    source.write_bytes(b"RIFF")
    replace_synced(source, tmp_path / "segments" / "x.wav")
    assert not source.exists() and (tmp_path / "segments" / "x.wav").read_bytes() == b"RIFF"


def test_a_pipe_is_written_through_not_replaced(tmp_path: Path) -> None:
    # As /dev/stdout would be: renaming a file over it would take it away.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write(fifo, "through")
    reader.join(timeout=10)
    assert received == [b"through"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_no_writer_renames_or_syncs_by_hand() -> None:
    # One helper for temp file + fsync + rename + folder fsync: a second copy drifts
    # (one of the two before had no guard for systems without folder fsync).
    by_hand = re.compile(r"\bos\.(replace|rename|fsync)\(|\.rename\(")
    found = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "atomic.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        # The store moves a bad segment aside in its own folder: a move, not a write.
        if by_hand.search(line) and "aside" not in line
    ]
    assert found == []
