"""Tests for encoding, chapters, tags, loudness and subtitles, all checked by ffmpeg itself."""

from __future__ import annotations

import itertools
import json
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from narrator.book.audiobook import AudiobookOptions, make_audiobook, plan_parts
from narrator.book.encode import FORMATS, ffmpeg_exe
from narrator.book.stitch import Piece
from narrator.chunks.split import Chunk
from narrator.errors import ConfigError
from narrator.inputs.documents import parse_text
from narrator.util.wav import tone_pcm, wav_bytes

from .conftest import TEST_KEY, run_cli

RATE = 24_000
DOC = parse_text("# Opening\n\nOne. Two.\n\n# The = Middle; part\n\nThree.\n\n# Close\n\nFour.")
# chunk texts, chapters and seconds; each tone has its own pitch and ends mid-wave
PLAN = [
    ("Opening", 0, 0.61),
    ("One.", 0, 0.93),
    ("Two.", 0, 0.72),
    ("The = Middle; part", 1, 0.51),
    ("Three.", 1, 1.13),
    ("Close", 2, 0.42),
    ("Four.", 2, 0.87),
]


def png(path: Path) -> Path:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def make_book(
    tmp_path: Path,
    output: Path,
    *,
    amplitudes: list[int] | None = None,
    silence: float = 0.2,
    **options: object,
) -> tuple[object, list[Chunk]]:
    chunks = []
    pieces = []
    previous = None
    for i, (text, chapter, seconds) in enumerate(PLAN):
        chunks.append(Chunk(i, chapter, text, len(text), True))
        amp = amplitudes[i] if amplitudes else 8000
        quiet = b"\0\0" * int(silence * RATE)
        pcm = quiet + tone_pcm(seconds, RATE, freq=300 + 50 * i, amplitude=amp) + quiet
        seg = tmp_path / f"seg{i}.wav"
        seg.write_bytes(wav_bytes(pcm, RATE))
        gap = 0 if previous is None else (900 if chapter != previous else 250)
        pieces.append(Piece(seg, gap))
        previous = chapter
    book = make_audiobook(DOC, chunks, pieces, output, AudiobookOptions(**options))  # type: ignore[arg-type]
    return book, chunks


def ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True)


def probe(path: Path) -> tuple[str, float, dict[str, str], list[tuple[str, float]]]:
    """Container name, duration, tags and chapters as ffmpeg reads them back."""
    done = ffmpeg("-i", str(path), "-f", "ffmetadata", "-")
    stderr = done.stderr.decode()
    container = re.search(r"Input #0, ([\w,]+), from", stderr)
    duration = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", stderr)
    assert container and duration, stderr
    h, m, s = duration.groups()
    tags: dict[str, str] = {}
    chapters: list[tuple[str, float]] = []
    text = done.stdout.decode()
    if path.suffix in (".ogg", ".opus"):  # Ogg keeps its tags on the stream, not the file
        text = ogg_probe_text(path)
    section = "global"
    start = timebase = 0.0
    for line in text.splitlines():
        if line == ";FFMETADATA1":
            section = "global"
        elif line == "[CHAPTER]":
            section = "chapter"
        elif "=" in line and not line.startswith(";"):
            key, value = re.split(r"(?<!\\)=", line, maxsplit=1)
            value = re.sub(r"\\(.)", r"\1", value)
            if section == "global":
                tags[key.lower()] = value
            elif key == "TIMEBASE":
                num, den = value.split("/")
                timebase = int(num) / int(den)
            elif key == "START":
                start = int(value) * timebase
            elif key == "title":
                chapters.append((value, start))
    # ffmpeg lists ID3 chapters in frame order; players follow the CTOC, i.e. by time
    chapters.sort(key=lambda c: c[1])
    return container.group(1), int(h) * 3600 + int(m) * 60 + float(s), tags, chapters


def ogg_probe_text(path: Path) -> str:
    return ffmpeg(
        "-i", str(path), "-map_metadata", "0:s:a:0", "-f", "ffmetadata", "-"
    ).stdout.decode()


def decode(path: Path) -> list[int]:
    done = ffmpeg("-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-")
    assert done.returncode == 0, done.stderr
    return list(struct.unpack(f"<{len(done.stdout) // 2}h", done.stdout))


def loudness(path: Path) -> float:
    """Integrated loudness (LUFS) by ffmpeg's EBU R128 meter."""
    done = ffmpeg("-i", str(path), "-af", "ebur128", "-f", "null", "-")
    found = re.findall(r"I:\s+(-?[\d.]+) LUFS", done.stderr.decode())
    assert found, done.stderr
    return float(found[-1])


CONTAINERS = {"mp3": "mp3", "m4b": "mov", "m4a": "mov", "flac": "flac", "ogg": "ogg",
              "opus": "ogg", "wav": "wav"}  # fmt: skip


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_has_its_duration_tags_and_chapters(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"book.{fmt}"
    cover = png(tmp_path / "cover.png")
    book, _ = make_book(tmp_path, out, author="Ann Author", album="Tests", year="2024", cover=cover)

    container, seconds, tags, chapters = probe(out)

    assert container.startswith(CONTAINERS[fmt])
    assert seconds == pytest.approx(book.seconds, rel=0.01)  # type: ignore[attr-defined]
    assert tags["title"] == "Opening"  # the document's title
    assert tags.get("artist") == "Ann Author"
    assert tags.get("album") == "Tests"
    assert tags.get("date", tags.get("year", "")).startswith("2024")
    expected = [(m.title, m.start) for m in book.chapters]  # type: ignore[attr-defined]
    assert [t for t, _ in expected] == ["Opening", "The = Middle; part", "Close"]
    if fmt == "wav":
        assert chapters == []  # WAV has no chapter marks players read
    else:
        assert [t for t, _ in chapters] == [t for t, _ in expected]
        for (_, got), (_, want) in zip(chapters, expected, strict=True):
            # MP3 decoders drop the encoder's priming samples, ~50 ms, off the timeline
            assert got == pytest.approx(want, abs=0.06)
    if fmt != "wav":
        import mutagen

        audio = mutagen.File(out)
        pictures = (
            getattr(audio, "pictures", None)
            or [v for k, v in (audio.tags or {}).items() if k.startswith(("APIC", "covr"))]
            or audio.get("metadata_block_picture")
        )
        assert pictures, f"no cover in {fmt}"


def test_chapter_marks_start_where_their_first_chunk_starts(tmp_path: Path) -> None:
    book, _ = make_book(tmp_path, tmp_path / "book.m4b")
    starts = [m.start for m in book.chapters]  # type: ignore[attr-defined]
    # chapter 2's first chunk is the 4th; its audio starts after 3 pieces and their gaps
    assert starts[0] == 0.0 and starts[1] > 3 * 0.4 + 0.9


def test_joins_do_not_click(tmp_path: Path) -> None:
    # FLAC is lossless, so the decoded samples are exactly the stitched, cleaned ones.
    # Every tone ends mid-wave, right at the cut: that is what clicks unless faded.
    out = tmp_path / "book.flac"
    make_book(tmp_path, out, silence=0.0)
    values = decode(out)
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    # the steepest step of the highest tone itself (600 Hz at amplitude 8000) is ~1257
    assert max(steps) < 1300
    # and without clean joins, the same segments do click
    raw = tmp_path / "raw.flac"
    make_book(tmp_path, raw, silence=0.0, clean_joins=False)
    values = decode(raw)
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) > 1500


def test_wav_keeps_its_silence_unless_asked_to_clean(tmp_path: Path) -> None:
    exact, _ = make_book(tmp_path, tmp_path / "exact.wav")
    clean, _ = make_book(tmp_path, tmp_path / "clean.wav", clean_joins=True)
    # each of the 7 segments loses 2 x (0.2 s - 40 ms kept) of its own silence
    assert exact.seconds - clean.seconds == pytest.approx(7 * 2 * 0.16, abs=0.01)  # type: ignore[attr-defined]


def test_normalize_evens_a_book_whose_segments_differ_by_12_db(tmp_path: Path) -> None:
    amplitudes = [4000, 1000] * 4  # 20 * log10(4) = 12 dB apart
    make_book(tmp_path, tmp_path / "raw.m4a", amplitudes=amplitudes)
    out = tmp_path / "even.m4a"
    after, _ = make_book(tmp_path, out, amplitudes=amplitudes, normalize=True)

    assert loudness(out) == pytest.approx(-18.0, abs=1.0)
    assert abs(loudness(tmp_path / "raw.m4a") + 18) > 2  # it was not there already
    assert probe(out)[1] == pytest.approx(after.seconds, rel=0.01)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_subtitle_cues_are_in_order_without_overlap_and_end_with_the_book(
    tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "book.mp3"
    book, chunks = make_book(tmp_path, out, subtitles=kind)
    text = (tmp_path / f"book.{kind}").read_text(encoding="utf-8")
    mark = "," if kind == "srt" else r"\."
    stamp = rf"(\d\d):(\d\d):(\d\d){mark}(\d\d\d)"
    cues = re.findall(rf"^(\d+)\n{stamp} --> {stamp}\n(.+)$", text, re.M)

    def sec(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    assert text.startswith("WEBVTT\n") == (kind == "vtt")
    assert [int(c[0]) for c in cues] == list(range(1, len(chunks) + 1))
    spans = [(sec(*c[1:5]), sec(*c[5:9])) for c in cues]
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans))
    assert spans[-1][1] == pytest.approx(book.seconds, abs=0.001)  # type: ignore[attr-defined]
    assert spans[-1][1] == pytest.approx(probe(out)[1], rel=0.01)
    assert [c[9] for c in cues] == [c.text for c in chunks]


def test_split_hours_cuts_between_chunks_into_numbered_parts(tmp_path: Path) -> None:
    out = tmp_path / "book.opus"
    limit = 3.5  # seconds
    book, _ = make_book(tmp_path, out, split_hours=limit / 3600, subtitles="srt")
    files = book.files  # type: ignore[attr-defined]
    assert len(files) >= 3
    assert [f.name for f in files] == [f"book-{n:02d}.opus" for n in range(1, len(files) + 1)]
    assert not out.exists()
    lengths = [probe(f)[1] for f in files]
    assert sum(lengths) == pytest.approx(book.seconds, rel=0.01)  # type: ignore[attr-defined]
    assert all(length <= limit + 0.05 for length in lengths)
    for number, f in enumerate(files, start=1):
        _, _, tags, chapters = probe(f)
        assert tags["track"].split("/")[0] == str(number)
        assert f"part {number} of" in tags["title"]
        assert chapters and chapters[0][1] == 0.0  # every part opens in some chapter
        assert f.with_suffix(".srt").exists()


def test_plan_parts_is_greedy_and_never_cuts_a_chunk() -> None:
    assert plan_parts(10.0, [2, 4, 6, 8], None) == [(0.0, 10.0)]
    assert plan_parts(10.0, [2, 4, 6, 8], 5 / 3600) == [(0.0, 4), (4, 8), (8, 10.0)]
    # a chunk longer than the limit becomes a part of its own
    assert plan_parts(10.0, [1, 9], 2 / 3600) == [(0.0, 1), (1, 9), (9, 10.0)]


def test_bad_options_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose one of mp3"):
        AudiobookOptions(format="aiff")
    not_image = tmp_path / "cover.txt"
    not_image.write_text("hello")
    with pytest.raises(ConfigError, match="not a JPEG or PNG"):
        AudiobookOptions(cover=not_image)
    with pytest.raises(ConfigError, match="unknown audio format"):
        make_book(tmp_path, tmp_path / "book.aiff")


async def test_the_cli_writes_an_m4b_with_chapters_subtitles_and_a_report(
    emulator: object, tmp_path: Path
) -> None:
    source = tmp_path / "story.md"
    source.write_text("# Story\n\nIt begins here. Then more.\n\n# Ending\n\nIt ends.")
    out = tmp_path / "story.m4b"
    result = await run_cli(
        "narrate", str(source), "-o", str(out), "--base-url", emulator.url,  # type: ignore[attr-defined]
        "--cache-dir", str(tmp_path / "c"), "--rpm", "6000", "--quiet", "--author", "Me",
        "--subtitles", "vtt", "--normalize", "--report", str(tmp_path / "r.json"),
        env={"AIMLAPI_KEY": TEST_KEY},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    container, seconds, tags, chapters = probe(out)
    assert container.startswith("mov") and tags["title"] == "Story" and tags["artist"] == "Me"
    (doc,) = json.loads((tmp_path / "r.json").read_text())["documents"]
    assert [c["title"] for c in doc["chapters"]] == ["Story", "Ending"]
    assert [t for t, _ in chapters] == ["Story", "Ending"]
    assert chapters[1][1] == pytest.approx(doc["chapters"][1]["start"], abs=0.01)
    assert seconds == pytest.approx(doc["audio_seconds"], rel=0.01)
    assert (tmp_path / "story.vtt").read_text().startswith("WEBVTT")


async def test_the_cli_refuses_an_unknown_extension(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("Hello.")
    result = await run_cli("narrate", str(source), "-o", str(tmp_path / "a.aiff"),
                           "--provider", "espeak")  # fmt: skip
    assert result.code == 2
    assert "extensions .mp3" in result.stderr and "Traceback" not in result.stderr
