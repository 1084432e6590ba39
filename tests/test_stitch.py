"""Tests for narrator.book.stitch: order, gaps, formats, atomic writes and flat memory."""

from __future__ import annotations

import itertools
import math
import struct
import tracemalloc
import wave
from pathlib import Path
from subprocess import run

import imageio_ffmpeg
import pytest

from narrator.book.stitch import KEEP_MS, Piece, StitchResult, stitch_wav
from narrator.errors import AudioError
from narrator.util.wav import read_wav_info, tone_pcm, wav_bytes

RATE = 24_000


def write_wav(
    path: Path, pcm: bytes, rate: int = RATE, *, channels: int = 1, width: int = 2
) -> Path:
    path.write_bytes(wav_bytes(pcm, rate, channels=channels, width=width))
    return path


def samples_of(path: Path) -> bytes:
    """The data chunk of the WAV file at ``path``."""
    info = read_wav_info(path)
    return path.read_bytes()[info.data_offset : info.data_offset + info.data_size]


def to_stereo(mono16: bytes) -> bytes:
    return b"".join(mono16[i : i + 2] * 2 for i in range(0, len(mono16), 2))


def to_width(mono16: bytes, width: int) -> bytes:
    """16-bit samples at another width, as audioop scales them (8-bit as WAV's unsigned)."""
    values = struct.unpack(f"<{len(mono16) // 2}h", mono16)
    if width == 1:
        return bytes(((v >> 8) + 128) & 0xFF for v in values)
    return b"".join((v << 8).to_bytes(3, "little", signed=True) for v in values)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def tones() -> list[bytes]:
    """Three 16-bit mono 24 kHz tones, each with its own length, pitch and loudness."""
    return [
        tone_pcm(0.5, RATE, freq=220, amplitude=3000),
        tone_pcm(0.3, RATE, freq=440, amplitude=9000),
        tone_pcm(0.25, RATE, freq=880, amplitude=15000),
    ]


@pytest.fixture
def segments(tmp_path: Path, tones: list[bytes]) -> list[Path]:
    return [write_wav(tmp_path / f"seg{i}.wav", pcm) for i, pcm in enumerate(tones)]


def test_samples_are_copied_in_order_with_exact_gaps(
    tmp_path: Path, segments: list[Path], tones: list[bytes]
) -> None:
    gaps = [700, 250, 100]  # the first piece's gap is ignored
    pieces = [Piece(path, gap) for path, gap in zip(segments, gaps, strict=True)]

    result = stitch_wav(pieces, tmp_path / "book.wav")

    silence = [b"", b"\0" * (6000 * 2), b"\0" * (2400 * 2)]  # 250 ms and 100 ms at 24 kHz
    expected = b"".join(gap + pcm for gap, pcm in zip(silence, tones, strict=True))
    assert samples_of(tmp_path / "book.wav") == expected
    frames = [len(pcm) // 2 for pcm in tones]  # 12000, 7200, 6000
    assert result == StitchResult(
        path=tmp_path / "book.wav",
        rate=RATE,
        channels=1,
        width=2,
        frames=sum(frames) + 6000 + 2400,
        starts=(0.0, 18000 / RATE, 27600 / RATE),
        durations=tuple(f / RATE for f in frames),
    )
    assert result.seconds == pytest.approx(1.40)


def test_output_is_a_standard_pcm_wav(tmp_path: Path, segments: list[Path]) -> None:
    result = stitch_wav([Piece(p, 50) for p in segments], tmp_path / "book.wav")

    with wave.open(str(tmp_path / "book.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        assert w.getnframes() == result.frames
    assert (tmp_path / "book.wav").read_bytes()[20:22] == b"\x01\x00"  # WAVE_FORMAT_PCM
    assert (tmp_path / "book.wav").stat().st_size == 44 + result.frames * 2


def test_the_same_segment_may_appear_twice(tmp_path: Path, segments: list[Path]) -> None:
    pieces = [Piece(segments[1], 0), Piece(segments[1], 0)]
    stitch_wav(pieces, tmp_path / "book.wav")
    assert samples_of(tmp_path / "book.wav") == samples_of(segments[1]) * 2


def test_gaps_round_to_the_nearest_frame(tmp_path: Path) -> None:
    seg = write_wav(tmp_path / "a.wav", tone_pcm(0.1, 22050), 22050)
    # 1 ms at 22050 Hz is 22.05 frames, 3 ms is 66.15: 22 and 66 frames.
    result = stitch_wav([Piece(seg, 0), Piece(seg, 1), Piece(seg, 3)], tmp_path / "book.wav")
    assert result.frames == 3 * 2205 + 22 + 66
    assert result.starts == (0.0, 2227 / 22050, 4498 / 22050)


def test_empty_segments_only_add_their_gaps(tmp_path: Path, segments: list[Path]) -> None:
    empty = write_wav(tmp_path / "empty.wav", b"")
    empty24 = write_wav(tmp_path / "empty24.wav", b"", width=3)
    pieces = [Piece(segments[0], 0), Piece(empty, 100), Piece(empty24, 0), Piece(segments[1], 0)]

    result = stitch_wav(pieces, tmp_path / "book.wav")

    assert result.durations[1:3] == (0.0, 0.0)
    assert result.starts[1:] == (14400 / RATE, 14400 / RATE, 14400 / RATE)
    assert samples_of(tmp_path / "book.wav") == (
        samples_of(segments[0]) + b"\0" * 4800 + samples_of(segments[1])
    )


def test_a_segment_at_another_rate_is_resampled(
    tmp_path: Path, segments: list[Path], tones: list[bytes]
) -> None:
    slow = write_wav(tmp_path / "slow.wav", tone_pcm(1.0, 22050, freq=500, amplitude=9000), 22050)
    pieces = [Piece(segments[0], 0), Piece(slow, 0), Piece(segments[1], 0)]

    result = stitch_wav(pieces, tmp_path / "book.wav")

    assert (result.rate, result.channels, result.width) == (RATE, 1, 2)
    assert result.durations[1] == pytest.approx(1.0, abs=0.002)
    data = samples_of(tmp_path / "book.wav")
    assert len(data) == result.frames * 2
    # The pieces around it keep their samples; the tone itself keeps its loudness.
    assert data.startswith(tones[0]) and data.endswith(tones[1])
    middle = data[len(tones[0]) : -len(tones[1])]
    assert len(middle) // 2 == round(result.durations[1] * RATE)
    assert max(struct.unpack(f"<{len(middle) // 2}h", middle)) == pytest.approx(9000, rel=0.02)


def test_stereo_is_mixed_down_to_a_mono_first_segment(
    tmp_path: Path, segments: list[Path], tones: list[bytes]
) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", to_stereo(tones[1]), channels=2)
    result = stitch_wav([Piece(segments[0], 0), Piece(stereo, 0)], tmp_path / "book.wav")
    assert result.channels == 1
    assert samples_of(tmp_path / "book.wav") == tones[0] + tones[1]


def test_mono_is_spread_to_a_stereo_first_segment(tmp_path: Path, tones: list[bytes]) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", to_stereo(tones[0]), channels=2)
    mono = write_wav(tmp_path / "mono.wav", tones[1])

    result = stitch_wav([Piece(stereo, 0), Piece(mono, 10)], tmp_path / "book.wav")

    assert result.channels == 2
    assert samples_of(tmp_path / "book.wav") == (
        to_stereo(tones[0]) + b"\0" * (240 * 4) + to_stereo(tones[1])
    )


def test_8_bit_silence_is_0x80_and_16_bit_is_narrowed(tmp_path: Path, tones: list[bytes]) -> None:
    pcm8 = to_width(tones[0], 1)[:-1]  # an odd number of bytes: the data chunk needs a pad
    first = write_wav(tmp_path / "first.wav", pcm8, width=1)
    wide = write_wav(tmp_path / "wide.wav", tones[1])

    result = stitch_wav([Piece(first, 0), Piece(wide, 10)], tmp_path / "book.wav")

    assert result.width == 1
    expected = pcm8 + b"\x80" * 240 + to_width(tones[1], 1)
    assert samples_of(tmp_path / "book.wav") == expected
    assert (tmp_path / "book.wav").stat().st_size == 44 + len(expected) + 1
    with wave.open(str(tmp_path / "book.wav"), "rb") as w:
        assert w.readframes(w.getnframes()) == expected


def test_24_bit_segments_convert_both_ways(tmp_path: Path, tones: list[bytes]) -> None:
    pcm24 = to_width(tones[0], 3)
    deep = write_wav(tmp_path / "deep.wav", pcm24, width=3)
    plain = write_wav(tmp_path / "plain.wav", tones[1])

    stitch_wav([Piece(deep, 0), Piece(plain, 0)], tmp_path / "deep_first.wav")
    stitch_wav([Piece(plain, 0), Piece(deep, 0)], tmp_path / "plain_first.wav")

    assert samples_of(tmp_path / "deep_first.wav") == pcm24 + to_width(tones[1], 3)
    assert samples_of(tmp_path / "plain_first.wav") == tones[1] + tones[0]


def extensible_wav(pcm: bytes, rate: int) -> bytes:
    """A mono 16-bit WAVE_FORMAT_EXTENSIBLE file, which old ``wave`` modules reject."""
    pcm_guid = bytes.fromhex("0100000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, rate, rate * 2, 2, 16, 22, 16, 0x4) + pcm_guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_wave_format_extensible_is_accepted(
    tmp_path: Path, segments: list[Path], tones: list[bytes]
) -> None:
    ext = tmp_path / "ext.wav"
    ext.write_bytes(extensible_wav(tones[2], RATE))

    result = stitch_wav([Piece(ext, 0), Piece(segments[0], 20)], tmp_path / "book.wav")

    assert (result.rate, result.channels, result.width) == (RATE, 1, 2)
    assert samples_of(tmp_path / "book.wav") == tones[2] + b"\0" * (480 * 2) + tones[0]


def test_missing_output_folders_are_created(tmp_path: Path, segments: list[Path]) -> None:
    output = tmp_path / "out" / "My Book" / "book.wav"
    assert stitch_wav([Piece(segments[0], 0)], output).path == output
    assert samples_of(output) == samples_of(segments[0])


def test_nothing_to_stitch(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nothing to stitch"):
        stitch_wav(iter(()), tmp_path / "book.wav")
    assert listing(tmp_path) == set()


def test_a_missing_segment_is_named(tmp_path: Path, segments: list[Path]) -> None:
    with pytest.raises(AudioError, match=r"gone\.wav"):
        stitch_wav([Piece(segments[0], 0), Piece(tmp_path / "gone.wav", 0)], tmp_path / "b.wav")


def test_negative_gaps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gap_before_ms"):
        Piece(tmp_path / "a.wav", -1)


@pytest.fixture
def old_book(tmp_path: Path) -> Path:
    book = tmp_path / "book.wav"
    book.write_bytes(b"the finished audiobook from last night")
    return book


def test_a_bad_piece_leaves_the_old_output_alone(
    tmp_path: Path, segments: list[Path], old_book: Path
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"<html>403 Forbidden</html>")
    before = listing(tmp_path)

    with pytest.raises(AudioError, match=r"bad\.wav"):
        stitch_wav([Piece(segments[0], 0), Piece(bad, 0), Piece(segments[1], 0)], old_book)

    assert old_book.read_bytes() == b"the finished audiobook from last night"
    assert listing(tmp_path) == before


def test_a_failure_mid_write_removes_the_temp_file(
    tmp_path: Path, segments: list[Path], old_book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first piece is already in the temp file when converting the second one fails.
    def out_of_memory(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr("narrator.book.joins.AudioSegment.set_frame_rate", out_of_memory)
    slow = write_wav(tmp_path / "slow.wav", tone_pcm(0.2, 22050), 22050)
    before = listing(tmp_path)

    with pytest.raises(MemoryError):
        stitch_wav([Piece(segments[0], 0), Piece(slow, 0)], old_book)

    assert old_book.read_bytes() == b"the finished audiobook from last night"
    assert listing(tmp_path) == before


def test_a_failed_rename_removes_the_temp_file(
    tmp_path: Path, segments: list[Path], old_book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_gone(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("narrator.util.atomic.os.replace", disk_gone)
    before = listing(tmp_path)

    with pytest.raises(OSError, match="Input/output"):
        stitch_wav([Piece(p, 0) for p in segments], old_book)

    assert old_book.read_bytes() == b"the finished audiobook from last night"
    assert listing(tmp_path) == before


def huge_wav(path: Path, data_size: int) -> Path:
    """A WAV file of ``data_size`` silent bytes, sparse so it takes no disk space."""
    with path.open("wb") as fh:
        fh.write(wav_bytes(b"", RATE)[:40] + struct.pack("<I", data_size))
        fh.truncate(44 + data_size)
    return path


def test_more_than_4_gib_becomes_rf64_which_ffmpeg_reads(
    tmp_path: Path, segments: list[Path], tones: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writing 4 GiB in a test is too slow, so the RIFF limit is lowered to just under
    # what three tones need; the layout and sizes are the same as for a real long book.
    data = sum(map(len, tones)) + 2 * 2400 * 2
    monkeypatch.setattr("narrator.book.riff._RIFF_LIMIT", 36 + data - 2)
    out = tmp_path / "book.wav"

    result = stitch_wav([Piece(p, 100) for p in segments], out)

    raw = out.read_bytes()
    assert raw[:4] == b"RF64" and raw[12:16] == b"ds64"
    assert struct.unpack_from("<QQQ", raw, 20) == (len(raw) - 8, data, data // 2)
    assert raw[76:80] == struct.pack("<I", 0xFFFF_FFFF)
    assert result.frames == data // 2
    decoded = tmp_path / "decoded.wav"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    run([ffmpeg, "-v", "error", "-i", str(out), "-c:a", "pcm_s16le", str(decoded)], check=True)
    gap = b"\0\0" * 2400
    assert samples_of(decoded) == tones[0] + gap + tones[1] + gap + tones[2]


def silence(seconds: float) -> bytes:
    return b"\0\0" * round(seconds * RATE)


def test_clean_joins_trim_silence_conservatively_and_fade_the_edges(tmp_path: Path) -> None:
    loud = tone_pcm(0.5, RATE, freq=440, amplitude=8000)
    # -40 dBFS: quiet speech, well above the -50 dBFS silence threshold; must be kept
    whisper = tone_pcm(0.2, RATE, freq=440, amplitude=330)
    first = write_wav(tmp_path / "a.wav", silence(0.3) + whisper + loud + silence(0.4))
    second = write_wav(tmp_path / "b.wav", loud + silence(0.05))
    out = tmp_path / "book.wav"

    result = stitch_wav([Piece(first, 0), Piece(second, 250)], out, clean=True)

    keep = round(KEEP_MS / 1000 * RATE)
    # The first sample of a sine is 0, so speech starts one frame after the trimmed silence
    first_len = keep - 1 + (len(whisper) + len(loud)) // 2 + keep
    assert result.durations[0] == pytest.approx(first_len / RATE, abs=2 / RATE)
    assert result.durations[1] == pytest.approx((len(loud) // 2 + keep) / RATE, abs=2 / RATE)
    assert result.starts[1] == pytest.approx(result.durations[0] + 0.25, abs=1 / RATE)
    values = struct.unpack(f"<{result.frames}h", samples_of(out))
    assert max(abs(v) for v in values[: first_len // 2]) > 300  # the whisper survived
    assert values[0] == 0 and values[-1] == 0
    # 5 ms fades: no step between neighbouring samples exceeds the tone's own slope
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    slope = 8000 * 2 * math.pi * 440 / RATE  # a sine's largest sample-to-sample step
    assert max(steps) <= slope + 2


def test_without_clean_joins_a_cut_tone_jumps(tmp_path: Path) -> None:
    # The counterpart of the test above: the raw join really does click.
    cut = tone_pcm(0.1013, RATE, freq=440, amplitude=8000)  # ends mid-wave
    seg = write_wav(tmp_path / "cut.wav", cut)
    out = tmp_path / "book.wav"
    result = stitch_wav([Piece(seg, 100), Piece(seg, 100)], out)
    values = struct.unpack(f"<{result.frames}h", samples_of(out))
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) > 2000


def test_a_silent_piece_is_kept_whole_when_cleaning(tmp_path: Path, segments: list[Path]) -> None:
    pause = write_wav(tmp_path / "pause.wav", silence(0.3))
    result = stitch_wav([Piece(segments[0], 0), Piece(pause, 0)], tmp_path / "b.wav", clean=True)
    assert result.durations[1] == pytest.approx(0.3)


def test_memory_stays_flat_for_a_long_book(tmp_path: Path) -> None:
    # 300 ten-second segments (50 minutes, 144 MB of samples); one file, referenced 300
    # times, keeps the test fast. Holding the book would take 144 MB and even holding one
    # segment 480 KB; streaming needs its 64 KiB blocks and a little per piece.
    seg = write_wav(tmp_path / "seg.wav", tone_pcm(10.0, RATE))
    pieces = [Piece(seg, 300) for _ in range(300)]

    tracemalloc.start()
    try:
        result = stitch_wav(pieces, tmp_path / "book.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 400_000
    assert result.frames == 300 * 240_000 + 299 * 7200
    assert (tmp_path / "book.wav").stat().st_size == 44 + result.frames * 2
