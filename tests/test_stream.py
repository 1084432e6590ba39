"""The book written while it is synthesized (narrator/book/stream.py, narration.py).

The pipeline in process with a provider that answers tones and can hold one chunk back
until something has happened on disk; the real process against the emulator for a
Ctrl-C; real ffmpeg everywhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import narrator
from narrator.book.audiobook import make_audiobook, plan_parts
from narrator.book.stitch import Piece, stitch_wav
from narrator.chunks.split import Chunk
from narrator.errors import BadRequest
from narrator.inputs.documents import Chapter, Document
from narrator.settings import AudiobookOptions
from narrator.synth.providers import Audio
from narrator.tools.emulator import EmulatorConfig, start_emulator
from narrator.util.atomic import temp_beside
from narrator.util.wav import read_wav_info, tone_pcm, wav_bytes

from .conftest import TEST_KEY
from .test_encode import decode, loudness, probe

RATE = 8000
PARAGRAPHS = [f"Line {n} of the long road home, past the mill." for n in range(24)]


def hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


async def until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` came true within about 30 s (polled: the disk has no events)."""
    for _ in range(3000):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return False


class Tones:
    """A service answering a tone as long as the text; a chunk with ``hold`` in its text
    is answered (or refused, with ``fail``) only once ``ready()`` is true."""

    name = "tones"
    model = "tone-1"
    identity = "tones"
    max_chars = 600
    voices = ()

    def __init__(self, hold: str, ready: Callable[[], bool], *, fail: bool = False) -> None:
        self.hold = hold
        self.ready = ready
        self.fail = fail
        self.seen_ready: bool | None = None

    @staticmethod
    def billing_chars(text: str) -> int:
        return len(text)

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        if self.hold in text:
            self.seen_ready = await until(self.ready)
            if self.fail:
                raise BadRequest("this text is refused")
        pcm = tone_pcm(0.05 * len(text), RATE, freq=300 + len(text) % 7 * 40, amplitude=6000)
        return Audio(data=wav_bytes(pcm, RATE))

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> None:
        raise AssertionError("answers are inline")

    async def aclose(self) -> None:
        pass


def settings(tmp_path: Path, **extra: object) -> narrator.Settings:
    return narrator.Settings(
        provider="espeak", cache_dir=tmp_path / "cache", max_chars=60, qa="off",
        concurrency=2, rpm=100000, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["m4b", "mp3"])
async def test_the_book_is_encoded_while_its_last_chunk_is_still_being_synthesized(
    tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # The last chunk is answered only once the encoder's hidden file has grown.
    provider = Tones("Line 23", lambda: any(p.stat().st_size > 0 for p in hidden(out)))
    text = "\n\n".join(PARAGRAPHS)
    report = await narrator.narrate(
        text, out / f"book.{fmt}", settings(tmp_path), provider=provider
    )

    assert provider.seen_ready is True  # encoding ran before the last chunk was in
    assert report.status == "done" and report.chunks == len(PARAGRAPHS)
    _, seconds, _, _ = probe(out / f"book.{fmt}")
    assert seconds == pytest.approx(report.audio_seconds, abs=0.1)
    assert hidden(out) == []


async def test_a_chunk_failing_mid_stream_leaves_no_hidden_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    provider = Tones("Line 20", lambda: bool(hidden(out)), fail=True)
    text = "\n\n".join(PARAGRAPHS)
    with pytest.raises(narrator.NarrationFailed) as info:
        await narrator.narrate(text, out / "book.m4b", settings(tmp_path), provider=provider)

    assert provider.seen_ready is True  # the book was being written when the chunk failed
    assert info.value.report.status == "failed"
    assert "refused" in info.value.report.errors[0]
    assert list(out.iterdir()) == []


def road_to_mp3(tmp_path: Path, out: Path, url: str) -> list[str]:
    """The command narrating ``road.txt`` into ``out/road.mp3``, chunk by chunk."""
    return [
        sys.executable, "-m", "narrator", "narrate", str(tmp_path / "road.txt"),
        "-o", str(out / "road.mp3"), "--base-url", url, "--api-key", TEST_KEY,
        "--cache-dir", str(tmp_path / "c"), "--max-chars", "60", "--concurrency", "2",
        "--rpm", "100000", "--qa", "off", "--quiet",
    ]  # fmt: skip


async def test_ctrl_c_mid_stream_leaves_no_hidden_file(tmp_path: Path) -> None:
    (tmp_path / "road.txt").write_text("\n\n".join(PARAGRAPHS * 2))
    out = tmp_path / "out"
    out.mkdir()
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.3))
    env = {k: v for k, v in os.environ.items() if k != "AIMLAPI_KEY"}
    try:
        proc = await asyncio.create_subprocess_exec(
            *road_to_mp3(tmp_path, out, emulator.url),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert await until(lambda: bool(hidden(out)) or proc.returncode is not None)
        assert hidden(out), "the book was not being written during synthesis"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    finally:
        await emulator.close()
    assert proc.returncode == 130, err.decode()
    assert list(out.iterdir()) == []


async def test_what_a_kill_9_left_beside_the_book_goes_with_the_next_run(tmp_path: Path) -> None:
    (tmp_path / "road.txt").write_text("\n\n".join(PARAGRAPHS * 2))
    out = tmp_path / "out"
    out.mkdir()
    # Another writer of the same book, alive (this test): its hidden file must stay.
    live = temp_beside(out / "road.mp3").with_suffix(".part1.tmp")
    live.write_bytes(b"still being written")
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.3))
    env = {k: v for k, v in os.environ.items() if k != "AIMLAPI_KEY"}
    args = road_to_mp3(tmp_path, out, emulator.url)
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert await until(lambda: len(hidden(out)) > 1 or proc.returncode is not None)
        proc.kill()  # no handler runs: the encoder's hidden file stays behind
        await proc.communicate()
        left = [p for p in hidden(out) if p != live]
        assert left, "the killed run left nothing to sweep"
        again = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(120):
            _, err = await again.communicate()
    finally:
        await emulator.close()
    assert again.returncode == 0, err.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, "road.mp3"])
    container, seconds, _, _ = probe(out / "road.mp3")
    assert container == "mp3" and seconds > 10


# --- the book stage alone -----------------------------------------------------------------


def pieces(tmp_path: Path, count: int) -> tuple[Document, list[Chunk], list[Piece]]:
    doc = Document("Parts", (Chapter(0, "One", ("x",)), Chapter(1, "Two", ("y",))), "parts.txt")
    chunks, found = [], []
    for i in range(count):
        seconds = 0.4 + (i * 37 % 11) / 10  # uneven, so the greedy plan has choices
        seg = tmp_path / f"seg{i}.wav"
        seg.write_bytes(wav_bytes(tone_pcm(seconds, RATE, freq=200 + 20 * i), RATE))
        chapter = 0 if i < count // 2 else 1
        chunks.append(Chunk(i, chapter, f"chunk {i}", 7, True))
        found.append(Piece(seg, 0 if i == 0 else 300 + 150 * (i % 3)))
    return doc, chunks, found


def test_split_hours_cuts_where_the_batch_plan_cuts(tmp_path: Path) -> None:
    doc, chunks, found = pieces(tmp_path, 30)
    hours = 6.0 / 3600  # parts of at most six seconds
    book = make_audiobook(
        doc, chunks, found, tmp_path / "book.wav", AudiobookOptions(split_hours=hours)
    )
    whole = stitch_wav(found, tmp_path / "whole.wav")
    ends = [s + d for s, d in zip(whole.starts, whole.durations, strict=True)]
    cuts = [(e + s) / 2 for e, s in zip(ends, whole.starts[1:], strict=False)]
    planned = plan_parts(whole.seconds, cuts, hours)

    assert len(planned) > 3 and len(book.files) == len(planned)
    got = [read_wav_info(path).frames for path in book.files]
    want = [round(end * RATE) - round(start * RATE) for start, end in planned]
    assert got == want
    # and the parts together are the whole book, sample for sample
    data = b"".join(
        path.read_bytes()[info.data_offset : info.data_offset + info.data_size]
        for path in book.files
        for info in [read_wav_info(path)]
    )
    info = read_wav_info(whole.path)
    assert data == whole.path.read_bytes()[info.data_offset : info.data_offset + info.data_size]


def chunks_of(path: Path) -> list[tuple[bytes, bytes]]:
    """The RIFF chunks of a WAV file: id and body."""
    raw = path.read_bytes()
    found, pos = [], 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        found.append((cid, raw[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return found


def test_a_wav_book_is_sample_exact_and_tagged_without_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    def no_ffmpeg(*args: object, **kwargs: object) -> None:
        raise AssertionError("a WAV book needs no ffmpeg (no second copy)")

    monkeypatch.setattr(subprocess, "Popen", no_ffmpeg)
    monkeypatch.setattr(subprocess, "run", no_ffmpeg)
    doc, chunks, found = pieces(tmp_path, 6)
    out = tmp_path / "book.wav"
    make_audiobook(doc, chunks, found, out, AudiobookOptions(author="Ann Author", year="2024"))
    monkeypatch.undo()

    whole = stitch_wav(found, tmp_path / "whole.wav")
    info = read_wav_info(whole.path)
    ids = [cid for cid, _ in chunks_of(out)]
    assert ids == [b"JUNK", b"fmt ", b"data", b"LIST"]
    data = dict(chunks_of(out))[b"data"]
    assert data == whole.path.read_bytes()[info.data_offset : info.data_offset + info.data_size]
    _, seconds, tags, _ = probe(out)
    assert tags["title"] == "Parts" and tags["artist"] == "Ann Author"
    assert tags["date"] == "2024"
    assert seconds == pytest.approx(whole.seconds, abs=0.01)
    assert decode(out)  # ffmpeg reads it back


def test_normalize_on_a_split_wav_book_reaches_its_target_in_every_part(tmp_path: Path) -> None:
    doc, chunks, found = pieces(tmp_path, 30)
    book = make_audiobook(
        doc, chunks, found, tmp_path / "even.wav",
        AudiobookOptions(normalize=True, split_hours=12.0 / 3600),
    )  # fmt: skip
    assert len(book.files) > 1
    for number, path in enumerate(book.files, start=1):
        _, _, tags, _ = probe(path)
        assert tags["title"] == f"Parts (part {number} of {len(book.files)})"
        assert loudness(path) == pytest.approx(-18.0, abs=1.5)
    assert hidden(tmp_path) == []


def test_a_bad_piece_mid_stream_aborts_and_removes_the_encoder_output(tmp_path: Path) -> None:
    doc, chunks, found = pieces(tmp_path, 6)
    found[4] = Piece(found[4].path, 300, max_seconds=0.1)  # longer than its text allows
    with pytest.raises(narrator.NarratorError, match="more than its text allows"):
        make_audiobook(doc, chunks, found, tmp_path / "book.mp3")
    assert hidden(tmp_path) == [] and not (tmp_path / "book.mp3").exists()
