"""Subtitles asked for after the book was made (issue 27, item 8): the book is up to
date, so only the sidecar is written, cued from the segments in the cache exactly as a
run making the book cues them; nothing is synthesized or encoded."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from narrator.book.ffmpeg import ffmpeg_exe
from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY, run_cli

DOCUMENT = """# The Harbour

The fog came in before the boats did. The keeper climbed the stair with his lantern.
He waited. Nobody came, and the bell rang twice across the water.

# The Storm

By midnight the wind had turned. The light burned on through the rain, and the boats
came home one by one. At dawn the harbour was quiet again.
"""


@pytest.fixture
def counted_ffmpeg(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder for ``PATH`` whose ``ffmpeg`` notes each call in a log, then runs the real
    one; and that log."""
    real = ffmpeg_exe()
    folder, calls = tmp_path / "bin", tmp_path / "ffmpeg-calls"
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    ffmpeg_exe.cache_clear()  # found again on the PATH each test gives
    try:
        yield folder, calls
    finally:
        ffmpeg_exe.cache_clear()


@pytest.mark.parametrize(
    "extra",
    [
        ("-o", "book.mp3", "--subtitles", "srt"),
        # parts of about 5 s, loudness in two passes, cues per chunk: one sidecar per part
        ("-o", "book.m4b", "--subtitles", "vtt", "--split-hours", "0.0015", "--normalize"),
        ("-o", "book.ogg", "--subtitles", "srt", "--cue", "chunk"),
        # the read-along book beside it has no sidecar of its own, and stays as it was
        ("-o", "book.mp3", "--subtitles", "srt", "--read-along", "book.epub"),
    ],
    ids=["mp3", "m4b-parts", "cue-chunk", "read-along"],
)
async def test_subtitles_added_to_a_made_book_are_the_ones_a_full_run_writes(
    emulator: RunningEmulator,
    tmp_path: Path,
    counted_ffmpeg: tuple[Path, Path],
    extra: tuple[str, ...],
) -> None:
    source = tmp_path / "harbour.md"
    source.write_text(DOCUMENT)
    path, calls = counted_ffmpeg
    env = {"AIMLAPI_KEY": TEST_KEY, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
    kind = extra[3]
    plain = tuple(a for a in extra if a not in ("--subtitles", kind))
    common = ("narrate", str(source), "--base-url", emulator.url, "--max-chars", "90",
              "--rpm", "60000", "--cache-dir", str(tmp_path / "cache"))  # fmt: skip

    async def narrate(folder: str, *args: str) -> dict[str, object]:
        (tmp_path / folder).mkdir(exist_ok=True)
        result = await run_cli(
            *common, *args, "--report", "run.json", env=env, cwd=tmp_path / folder
        )
        assert result.code == 0, result.stderr
        report = json.loads((tmp_path / folder / "run.json").read_text())
        (document,) = report["documents"]
        return dict(document)

    full = await narrate("full", *extra)  # the book and its subtitles in one run
    assert full["status"] == "done"
    wanted = sorted(p.name for p in (tmp_path / "full").glob(f"*.{kind}"))
    audio = [f for f in full["files"] if not f.endswith(".epub")]  # type: ignore[attr-defined]
    assert len(wanted) == len(audio)
    if "--split-hours" in extra:
        assert len(wanted) >= 2
    assert (await narrate("later", *plain))["status"] == "done"  # from the cache
    assert not list((tmp_path / "later").glob(f"*.{kind}"))
    books = {f: (tmp_path / "later" / f).stat().st_mtime_ns for f in full["files"]}  # type: ignore[attr-defined]
    calls.unlink(missing_ok=True)
    requests = emulator.stats.requests

    later = await narrate("later", *extra)
    assert later["status"] == "up-to-date"
    assert later["requests"] == 0 and emulator.stats.requests == requests
    assert not calls.exists(), calls.read_text()  # no encoder, no remux, no probe
    assert {f: (tmp_path / "later" / f).stat().st_mtime_ns for f in books} == books
    for name in wanted:
        assert (tmp_path / "later" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    assert not [p.name for p in (tmp_path / "later").iterdir() if p.name.startswith(".")]


async def test_a_read_along_book_asked_for_subtitles_is_up_to_date(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Its text is on its pages: no sidecar is written beside it, so none is missing."""
    source = tmp_path / "harbour.md"
    source.write_text(DOCUMENT)
    args = ("narrate", str(source), "-o", str(tmp_path / "book.epub"), "--subtitles", "srt",
            "--base-url", emulator.url, "--rpm", "60000", "--cache-dir", str(tmp_path / "cache"),
            "--report", str(tmp_path / "run.json"))  # fmt: skip
    statuses = []
    for _ in range(2):
        result = await run_cli(*args, env={"AIMLAPI_KEY": TEST_KEY})
        assert result.code == 0, result.stderr
        statuses.append(json.loads((tmp_path / "run.json").read_text())["documents"][0]["status"])
    assert statuses == ["done", "up-to-date"]
    assert not list(tmp_path.glob("book.*[st]"))  # no .srt, no .vtt


def test_a_book_whose_segments_left_the_cache_is_made_again_for_its_subtitles(
    tmp_path: Path,
) -> None:
    import narrator

    def run(kind: str | None) -> narrator.DocumentReport:
        settings = narrator.Settings(
            provider="espeak",
            cache_dir=tmp_path / "cache",
            audiobook=narrator.AudiobookOptions(subtitles=kind),
        )
        return narrator.narrate_sync(DOCUMENT, tmp_path / "book.mp3", settings)

    assert run(None).status == "done"
    gone = next((tmp_path / "cache").rglob("*.wav"))
    gone.unlink()  # pruned, say: its cues cannot be had without synthesizing it again
    assert run("srt").status == "done"
    assert gone.exists() and (tmp_path / "book.srt").read_text().count(" --> ") > 4
