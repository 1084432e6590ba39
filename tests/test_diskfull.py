"""A full disk, for real: a small tmpfs mounted by the test, the real `narrator` process
and the emulator on a loopback port counting what it bills."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from narrator.store.files import RESERVE_BYTES
from narrator.tools.emulator import EmulatorConfig, start_emulator

from .conftest import TEST_KEY, run_cli


def _mount(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        if not _mount(folder, size):
            if os.environ.get("CI"):
                pytest.fail("cannot mount a tmpfs (root is needed); CI must run this test")
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False, timeout=30)


def _text(paragraphs: int) -> str:
    return "\n\n".join(
        f"Paragraph {n}: the tide came in slowly over the flats, and the birds moved up the "
        f"shore ahead of it, a few steps at a time, number {n}."
        for n in range(paragraphs)
    )


def _fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its filesystem is full."""
    filler = folder / "filler"
    block = bytes(256 * 1024)
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError as exc:
            assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return filler


async def test_a_book_that_will_not_fit_is_refused_before_any_request(
    tmp_path: Path,
    small_disk: callable,  # type: ignore[valid-type]
) -> None:
    disk = small_disk("2m")
    (tmp_path / "long.txt").write_text(_text(60))
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone"))
    try:
        result = await run_cli(
            "narrate", str(tmp_path / "long.txt"), "-o", str(disk / "long.mp3"),
            "--cache-dir", str(disk / "cache"), "--base-url", emulator.url, "--quiet",
            env={"AIMLAPI_KEY": TEST_KEY},
        )  # fmt: skip
        assert emulator.stats.requests == 0
    finally:
        await emulator.close()
    assert result.code == 1
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "space" in x]
    assert line.startswith("narrator: not enough space in ") and str(disk) in line
    assert "MB" in line and "nothing was sent" in line


async def test_a_disk_that_fills_mid_run_stops_it_and_resume_bills_nothing_twice(
    tmp_path: Path,
    small_disk: callable,  # type: ignore[valid-type]
) -> None:
    # Room for the whole book (about 22 MB of segments, and the downloads in flight), so
    # only the filler fills it, even when the run gets ahead of this test's polling.
    disk = small_disk("32m")
    source = tmp_path / "tides.txt"
    source.write_text(_text(40))
    cache = disk / "cache"
    args = (
        "narrate", str(source), "-o", str(tmp_path / "tides.mp3"), "--cache-dir", str(cache),
        "--concurrency", "2", "--rpm", "100000", "--quiet", "--report", str(tmp_path / "r.json"),
    )  # fmt: skip
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.15))
    try:
        env = {k: v for k, v in os.environ.items() if k != "NARRATOR_BASE_URL"}
        env |= {"AIMLAPI_KEY": TEST_KEY}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator", *args, "--base-url", emulator.url,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(600):  # the disk fills once a few chunks are stored
            if len(list((cache / "segments").glob("??/*.wav"))) >= 3 or proc.returncode:
                break
            await asyncio.sleep(0.05)
        filler = await asyncio.to_thread(_fill, disk)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        stderr = err.decode()
        assert proc.returncode == 1, stderr
        assert "Traceback" not in stderr and "never retrieved" not in stderr
        (line,) = [x for x in stderr.splitlines() if x.startswith("narrator: disk full")]
        assert f"disk full: {cache}" in line and "needs about" in line
        first = emulator.stats.requests
        assert not (tmp_path / "tides.mp3").exists()

        filler.unlink()  # space again: the same command resumes
        again = await run_cli(*args, "--base-url", emulator.url, env={"AIMLAPI_KEY": TEST_KEY})
        assert again.code == 0, again.stderr
        assert (tmp_path / "tides.mp3").stat().st_size > 0
        billed = emulator.stats.billed
        chunks = json.loads((tmp_path / "r.json").read_text())["documents"][0]["chunks"]
        assert first < chunks  # it stopped, not sending the rest into a full disk
        assert len(billed) == chunks and set(billed.values()) == {1}, billed
    finally:
        await emulator.close()


class _FillsTheDiskLast:
    """The offline voice, which fills ``disk`` as it hands over the last chunk: the disk
    is full when the book is stitched, after the up-front check found room."""

    def __init__(self, disk: Path, chunks: int) -> None:
        from narrator.synth.providers.espeak import EspeakProvider

        self._voice = EspeakProvider()
        self._disk = disk
        self._left = chunks
        self.identity = self._voice.identity
        self.max_chars = self._voice.max_chars
        self.billing_chars = self._voice.billing_chars

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> object:
        audio = await self._voice.synthesize(text, voice=voice, request_id=request_id)
        self._left -= 1
        if self._left == 0:
            _fill(self._disk)
        return audio

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise AssertionError("the offline voice has no links")

    async def aclose(self) -> None:
        await self._voice.aclose()


async def test_a_disk_that_fills_before_the_book_is_written_stops_the_run_naming_it(
    tmp_path: Path,
    small_disk: callable,  # type: ignore[valid-type]
) -> None:
    from narrator.chunks.split import split_document
    from narrator.errors import DiskFull
    from narrator.inputs.documents import parse_text
    from narrator.run.pipeline import Work, narrate_many
    from narrator.settings import Settings

    disk = small_disk("8m")
    doc = parse_text(_text(3), title="tides")
    settings = Settings(provider="espeak", cache_dir=tmp_path / "cache", rpm=100000)
    chunks = len(split_document(doc, max_chars=600, lang="en"))
    provider = _FillsTheDiskLast(disk, chunks)
    run = await narrate_many(
        [Work(doc, disk / "tides.mp3")],
        settings,
        provider=provider,  # type: ignore[arg-type]
    )
    assert isinstance(run.stop_error, DiskFull)
    assert run.stop_error.folder == str(disk)
    assert str(run.stop_error).startswith(f"disk full: {disk} ")
    (report,) = run.documents
    assert report.status == "stopped" and "the disk is full" in report.errors[0]
    assert [p.name for p in disk.iterdir()] == ["filler"]  # no half-written book or scratch
    # The audio is all in the cache: with space again, the book is made from it alone.
    (disk / "filler").unlink()
    again = await narrate_many([Work(doc, disk / "tides.mp3")], settings)
    assert again.ok and again.documents[0].status == "done"
    assert again.documents[0].cached_chunks == chunks


class _AnswersAsTheDiskFills:
    """A link-shaped service whose answer comes back (billed) just as the disk is filled
    to the last byte by someone else: nothing is left for the link's row."""

    identity = "fills-the-disk"
    max_chars = 600
    billing_chars = staticmethod(len)

    def __init__(self, disk: Path) -> None:
        self._disk = disk
        self.billed = 0

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> object:
        from narrator.synth.providers import Audio

        _fill(self._disk)
        self.billed += 1
        return Audio(url=f"https://audio.example/{request_id}.wav")

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise AssertionError("nothing is downloaded into a full disk")

    async def aclose(self) -> None:
        pass


async def test_a_link_billed_as_the_disk_fills_is_kept_for_the_resume(
    tmp_path: Path,
    small_disk: callable,  # type: ignore[valid-type]
) -> None:
    from narrator.errors import DiskFull
    from narrator.store import Store
    from narrator.synth.jobs import Job
    from narrator.synth.pool import Pool, PoolConfig

    disk = small_disk("4m")
    store = Store(disk / "cache")
    provider = _AnswersAsTheDiskFills(disk)
    job = Job("a" * 64, "The tide came in slowly over the flats.", 39)
    try:
        async with Pool(provider, store, PoolConfig("v", 1, 100000)) as pool:  # type: ignore[arg-type]
            with pytest.raises(DiskFull):
                await pool.submit(job)
        assert isinstance(pool.stop_reason, DiskFull)
    finally:
        store.close()
    assert provider.billed == 1
    assert shutil.disk_usage(disk).free < 4096  # no room at all was left for the row
    # With space again, the next run finds the link paid for: it downloads, bills nothing.
    (disk / "filler").unlink()
    again = Store(disk / "cache")
    try:
        assert (
            again.pending_link(job.key, max_age=3600)
            == f"https://audio.example/narrator-{'a' * 24}-0.wav"
        )
        assert (disk / "cache" / "reserve").read_bytes() == bytes(RESERVE_BYTES)  # afresh
    finally:
        again.close()
