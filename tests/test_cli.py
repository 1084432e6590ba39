"""End to end: the real `narrator` command against the emulator on a loopback port."""

from __future__ import annotations

import itertools
import json
import math
import wave
from pathlib import Path

import pytest

from narrator.chunks.split import split_document
from narrator.inputs.documents import load_document
from narrator.store import Store, segment_key
from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator
from narrator.util.wav import read_wav_info

from .conftest import TEST_KEY, run_cli

ARTICLE = """# A Short Article

Dr. Smith arrived at 9.30 a.m. on Monday. "It's late," she said. The meeting had started.

Nobody minded. The budget was $2.5 million, i.e. more than last year! Was it enough?

# Second Chapter

This chapter is short. It has two sentences.

# Third Chapter

""" + " ".join(f"Sentence number {i} is here to make the chapter long." for i in range(40))


def emulator_args(emulator: RunningEmulator, cache: Path, *extra: str) -> list[str]:
    return [
        "--base-url", emulator.url, "--cache-dir", str(cache), "--rpm", "6000",
        "--concurrency", "4", "--max-chars", "200", "--quiet", *extra,
    ]  # fmt: skip


def frames_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


async def test_narrates_a_document_into_one_wav_in_order_with_gaps(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "article.txt"
    source.write_text(ARTICLE)
    out = tmp_path / "book.wav"
    cache = tmp_path / "cache"
    result = await run_cli(
        "narrate", str(source), "-o", str(out), "--gap-ms", "300", "--chapter-gap-ms", "1000",
        "--paragraph-gap-ms", "500",
        "--report", str(tmp_path / "report.json"), *emulator_args(emulator, cache),
        env={"AIMLAPI_KEY": TEST_KEY},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert str(out) in result.stdout

    # Rebuild the expected audio from the store: every chunk's segment, in order, with gaps.
    chunks = split_document(load_document(source), max_chars=200)
    assert len({c.chapter for c in chunks}) == 3 and len(chunks) > 5
    # all three kinds of gap occur: between chapters, paragraphs and within a paragraph
    within = [b for a, b in itertools.pairwise(chunks) if a.chapter == b.chapter]
    assert any(c.paragraph_start for c in within) and not all(c.paragraph_start for c in within)
    store = Store(cache)
    identity = f"aimlapi|{emulator.url}/v1/tts|alibaba/qwen3-tts-flash"
    expected = bytearray()
    previous = None
    for chunk in chunks:
        segment = store.lookup(segment_key(provider=identity, voice="Cherry", text=chunk.text))
        assert segment is not None
        if previous is not None:
            if chunk.chapter != previous.chapter:
                gap_ms = 1000
            else:
                gap_ms = 500 if chunk.paragraph_start else 300
            expected += b"\0\0" * (segment.rate * gap_ms // 1000)
        expected += frames_of(segment.path)
        previous = chunk
    store.close()
    assert frames_of(out) == bytes(expected)
    info = read_wav_info(out)
    assert (info.rate, info.channels, info.width) == (24000, 1, 2)

    report = json.loads((tmp_path / "report.json").read_text())
    (doc,) = report["documents"]
    assert doc["status"] == "done" and doc["chunks"] == len(chunks)
    assert doc["requests"] == len({c.text for c in chunks}) == emulator.stats.requests
    assert doc["billing_characters"] == sum(c.billing_chars for c in chunks)
    assert doc["audio_seconds"] == pytest.approx(info.seconds, abs=0.01)


async def test_concurrency_and_rate_limits_hold_on_the_wire(tmp_path: Path) -> None:
    config = EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.3)
    emulator = await start_emulator(config)
    try:
        source = tmp_path / "t.txt"
        source.write_text(" ".join(f"Sentence {i} goes here." for i in range(60)))
        rpm = 1200  # 20 a second
        result = await run_cli(
            "narrate", str(source), "-o", str(tmp_path / "t.wav"), "--api-key", TEST_KEY,
            "--base-url", emulator.url, "--cache-dir", str(tmp_path / "c"), "--quiet",
            "--max-chars", "30", "--concurrency", "3", "--rpm", str(rpm),
        )  # fmt: skip
        assert result.code == 0, result.stderr
        stats = emulator.stats
    finally:
        await emulator.close()
    assert stats.requests >= 30
    assert stats.max_in_flight == 3  # the cap was reached and never exceeded
    assert set(stats.statuses) == {201}
    starts = sorted(stats.starts)
    for t in starts:
        # rpm/60 starts a second, plus one for arrival jitter on a busy machine
        assert sum(t <= s < t + 1 for s in starts) <= math.ceil(rpm / 60) + 1
    assert min(b - a for a, b in itertools.pairwise(starts)) > 0


@pytest.mark.parametrize("shape", ["string", "binary", "mixed"])
async def test_every_response_shape_makes_the_same_book(tmp_path: Path, shape: str) -> None:
    source = tmp_path / "t.txt"
    source.write_text(ARTICLE)
    books = []
    for name in ("object", shape):
        emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", shape=name))
        try:
            out = tmp_path / f"{name}.wav"
            result = await run_cli(
                "narrate", str(source), "-o", str(out),
                *emulator_args(emulator, tmp_path / f"cache-{name}"), env={"AIMLAPI_KEY": TEST_KEY},
            )  # fmt: skip
            assert result.code == 0, result.stderr
            books.append(frames_of(out))
        finally:
            await emulator.close()
    assert books[0] == books[1]


async def test_a_folder_gives_one_book_per_document(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("First document. It is short.")
    (src / "sub" / "two.md").write_text("# Two\n\nSecond document.")
    (src / ".hidden.txt").write_text("Not me.")
    (src / "empty.txt").write_text("   \n")
    result = await run_cli(
        "narrate", str(src), "-o", str(tmp_path / "out"), *emulator_args(emulator, tmp_path / "c"),
        env={"AIMLAPI_KEY": TEST_KEY},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.wav")
    ) == [
        "one.wav",
        "sub/two.wav",
    ]
    assert "empty" in result.stdout  # the skipped file's row says why


async def test_without_a_key_it_says_which_variable(tmp_path: Path) -> None:
    source = tmp_path / "t.txt"
    source.write_text("Hello.")
    result = await run_cli("narrate", str(source))
    assert result.code == 2
    assert "AIMLAPI_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_a_rejected_key_stops_with_one_line(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "t.txt"
    source.write_text("Hello there. " * 50)
    result = await run_cli(
        "narrate", str(source), *emulator_args(emulator, tmp_path / "c"),
        env={"AIMLAPI_KEY": "wrong-key"},
    )  # fmt: skip
    assert result.code == 2
    assert "key was rejected" in result.stderr and "Traceback" not in result.stderr
    assert emulator.stats.requests <= 4  # stopped at once: only what was already in flight
    assert "wrong-key" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["narrate", "missing.txt", "--provider", "espeak"], "missing.txt"),
        (["narrate", "a.txt", "b.txt", "--provider", "espeak"], "-o DIR"),
        (["narrate", "a.txt", "--provider", "espeak", "--concurrency", "0"], "at least 1"),
        (["narrate", "a.txt", "--provider", "espeak", "--base-url", "ftp://x"], "http"),
        (["narrate", "a.txt", "--provider", "espeak", "-o", "a.aiff"], ".mp3, .m4b"),
    ],
)
async def test_usage_errors_are_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("Hello.")
    args = [str(tmp_path / a) if a.endswith(".txt") else a for a in args]
    result = await run_cli(*args, "--cache-dir", str(tmp_path / "c"))
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_offline_voice_needs_no_key_and_no_server(tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("# Hello\n\nThis is narrator speaking offline. 你好，世界。")
    result = await run_cli(
        "narrate",
        str(source),
        "--provider",
        "espeak",
        "--cache-dir",
        str(tmp_path / "c"),
        "--quiet",
    )
    assert result.code == 0, result.stderr
    info = read_wav_info(tmp_path / "hello.wav")
    assert info.rate == 22050 and info.seconds > 1.5


async def test_voices_lists_all_seventeen() -> None:
    result = await run_cli("voices")
    assert result.code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("[aimlapi] default voice Cherry; 60 requests/minute")
    names = [line.split()[0] for line in lines[1:]]
    assert len(names) == 17 and "Cherry" in names and "Eric" in names


def test_estimate_of_nothing_readable_exits_2_like_narrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from narrator.cli import main

    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    assert main(["estimate", str(blank), "--provider", "espeak"]) == 2
    err = capsys.readouterr().err
    assert "nothing to narrate" in err and "blank.txt" in err
    assert main(["narrate", str(blank), "--provider", "espeak"]) == 2
    # One document is "1 document" in the total.
    (tmp_path / "one.txt").write_text("One sentence to count.")
    assert main(["estimate", str(tmp_path / "one.txt"), "--provider", "espeak"]) == 0
    assert "total (1 document)" in capsys.readouterr().out
