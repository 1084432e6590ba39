"""A stop that comes while a book is being finished (issue 27, item 9: a watcher stopped
with SIGTERM left an 8.7 MB hidden part until its next start).

Every chunk is in, and the book's finish runs: a remux, or with ``--normalize`` the
second loudness pass, a full encode (about 13 s an hour of audio). A stop used to leave
that finish running on its thread: the process said "stopped" and "watcher stopped",
then did not exit until the finish was done (and wrote the book it had just reported
stopped); a supervisor's kill meanwhile (``docker stop``: 10 s; systemd: 90 s) left the
hidden part. Now the finish is given the stop's grace, then stopped, its part removed.

The second pass is slowed to the audio's own pace by an ``ffmpeg`` on ``PATH`` that adds
``-re`` to it (a slow machine, reproduced), so the stop surely comes in the middle.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import narrator
from narrator.book.ffmpeg import ffmpeg_exe
from narrator.tools.emulator import RunningEmulator

from .test_watch import BOUND, Watcher, sentences


@pytest.fixture
def slow_second_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``PATH`` finds an ffmpeg that runs the loudness pass that applies the gain (an
    ``-af`` filter that prints no measurement) at real-time speed, and notes that it
    started; the file it notes that in."""
    real = ffmpeg_exe()
    folder, started = tmp_path / "bin", tmp_path / "second-pass"
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *print_format*) ;;\n'
        f'  *" -af "*) touch "{started}"; exec "{real}" -re "$@";;\nesac\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    ffmpeg_exe.cache_clear()
    try:
        yield started
    finally:
        ffmpeg_exe.cache_clear()


async def _until(path: Path) -> None:
    async with asyncio.timeout(BOUND):
        while not path.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


async def test_a_stop_during_the_finish_ends_it_and_leaves_no_part(
    tmp_path: Path, slow_second_pass: Path
) -> None:
    """The library: the run returns with the book stopped and nothing of it on disk (the
    finish is not left writing on a thread of its own)."""
    out = tmp_path / "out"
    settings = narrator.Settings(
        provider="espeak",
        cache_dir=tmp_path / "cache",
        audiobook=narrator.AudiobookOptions(normalize=True),
    )
    work = narrator.Work(narrator.parse_text(sentences(12, "Harbour")), out / "book.m4b")
    stop = asyncio.Event()

    async def stop_in_the_second_pass() -> None:
        await _until(slow_second_pass)
        stop.set()

    stopper = asyncio.create_task(stop_in_the_second_pass())
    async with asyncio.timeout(BOUND):
        run = await narrator.narrate_many([work], settings, stop=stop, grace=0.2)
    await stopper
    assert [d.status for d in run.documents] == ["stopped"]
    assert sorted(p.name for p in out.iterdir()) == []  # no book, no hidden part
    await asyncio.sleep(0.5)  # and nothing goes on writing one
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.mark.slow  # the stop's grace (5 s) is part of what is tested
async def test_sigterm_to_a_watcher_finishing_a_book_leaves_no_hidden_part(
    emulator: RunningEmulator, tmp_path: Path, slow_second_pass: Path
) -> None:
    """The real watcher, SIGTERM while it finishes an M4B: it exits within the grace,
    before any supervisor's kill, and leaves nothing behind, hidden or not."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "long.txt").write_text(sentences(40, "Long"))
    watcher = await Watcher.start(
        inbox, out, emulator.url, tmp_path / "cache", "--format", "m4b", "--normalize"
    )
    try:
        await watcher.until("^watching")
        await _until(slow_second_pass)
        async with asyncio.timeout(BOUND):  # the second pass writes its hidden part
            while not _hidden(out):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        code = await watcher.stop()  # SIGTERM, then a bounded wait for the exit
    assert code == 0, watcher.lines
    assert watcher.matching(r"^stopped: .*long\.txt"), watcher.lines
    assert sorted(p.name for p in out.iterdir()) == [], watcher.lines
