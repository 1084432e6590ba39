"""Tests for the M4B finished without a remux: ffmpeg and mutagen read it back."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from mutagen.mp4 import MP4

from narrator.book import mp4
from narrator.book.encode import tag_values
from narrator.book.encoder import stream_args
from narrator.book.ffmpeg import ffmpeg_exe
from narrator.book.mp4 import finish_mp4
from narrator.book.tags import ChapterMark, Metadata
from narrator.util.wav import tone_pcm, wav_bytes

SECONDS = 6.0
CHAPTERS = [ChapterMark("Opening", 0.0), ChapterMark("Ünïcode\ttitle", 2.5)]


def ffmpeg(*args: str) -> bytes:
    """ffmpeg's output; ``-i FILE`` alone shows what it reads there (and exits 1)."""
    done = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", *args], capture_output=True, check=False
    )
    assert b"Invalid data" not in done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the streaming encoder leaves: AAC in an ipod MP4, moov last, no tags."""
    folder = tmp_path_factory.mktemp("mp4")
    wav = folder / "in.wav"
    pcm = b"".join(tone_pcm(SECONDS / 3, 24000, freq=f) for f in (220, 330, 440))
    wav.write_bytes(wav_bytes(pcm, 24000))
    out = folder / "encoded.m4b"
    ffmpeg("-i", str(wav), *stream_args("m4b", 2), str(out))
    assert out.stat().st_size > 1000
    return out


def top_level(path: Path) -> list[bytes]:
    data, kinds, at = path.read_bytes(), [], 0
    while at < len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        size = struct.unpack_from(">Q", data, at + 8)[0] if size == 1 else size
        kinds.append(kind)
        at += size
    return kinds


def packets(path: Path) -> bytes:
    """A checksum of every audio packet, as ffmpeg reads them."""
    return subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "quiet", "-i", str(path), "-map", "0:a",
         "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def test_tags_chapters_and_moov_first_without_touching_the_audio(
    encoded: Path, tmp_path: Path
) -> None:
    assert top_level(encoded)[-1] == b"moov"
    cover = tmp_path / "cover.png"
    cover.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    meta = Metadata(title="A Book", author="Ann Author", year="2024", cover=cover, track=(2, 3))
    out = tmp_path / "book.m4b"
    finish_mp4(encoded, out, metadata=meta, tags=tag_values(meta), chapters=CHAPTERS,
               seconds=SECONDS)  # fmt: skip
    assert top_level(out) == [b"ftyp", b"moov", b"mdat"]  # faststart
    assert packets(out) == packets(encoded)
    shown = ffmpeg("-i", str(out)).decode()
    assert "title           : A Book" in shown and "artist          : Ann Author" in shown
    assert "Chapter #0:1: start 2.500000, end 6.0" in shown
    read = MP4(out)  # type: ignore[no-untyped-call]
    tags = read.tags
    assert tags is not None
    assert tags["©nam"] == ["A Book"] and tags["trkn"] == [(2, 3)]
    assert tags["covr"][0] == cover.read_bytes()
    chapters = read.chapters
    assert chapters is not None
    assert [(c.title, c.start) for c in chapters] == [("Opening", 0.0), ("Ünïcode title", 2.5)]


def test_past_4_gib_offsets_are_64_bit(
    encoded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A book past 4 GiB takes the 64-bit path; the limit is lowered so a small one does.
    monkeypatch.setattr(mp4, "_U32", 1024)
    out = tmp_path / "book.m4b"
    meta = Metadata(title="Big")
    finish_mp4(encoded, out, metadata=meta, tags=tag_values(meta), chapters=CHAPTERS,
               seconds=SECONDS)  # fmt: skip
    data = out.read_bytes()
    assert b"co64" in data and b"stco" not in data
    assert struct.unpack_from(">I4s", data, data.index(b"mdat") - 4) == (1, b"mdat")
    assert packets(out) == packets(encoded)
    assert "Chapter #0:1: start 2.500000" in ffmpeg("-i", str(out)).decode()


def test_a_book_without_chapters_has_no_chapter_track(encoded: Path, tmp_path: Path) -> None:
    out = tmp_path / "book.m4a"
    meta = Metadata(title="Plain")
    finish_mp4(encoded, out, metadata=meta, tags=tag_values(meta), chapters=[], seconds=SECONDS)
    shown = ffmpeg("-i", str(out)).decode()
    assert "Chapter" not in shown and "SubtitleHandler" not in shown
    assert packets(out) == packets(encoded)
