"""The benchmark harness on tiny sizes: every row is produced and the JSON is written.

Timings are not asserted (a test cannot tell a slow machine from a slow program);
what is checked is that each benchmark really ran: real child processes against the
emulator, real files, numbers that follow from what was asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from narrator.chunks.split import split_document
from narrator.inputs.documents import parse_text
from narrator.tools.bench import runner as bench
from narrator.tools.bench import texts
from narrator.tools.bench.cases import CASES
from narrator.tools.bench.harness import Sizes

TINY = Sizes(
    chunks=6,
    latency=0.05,
    sequential=2,
    stitch_segments=4,
    pydub_segments=2,
    encode_segments=1,
    english_bytes=5000,
    chinese_bytes=3000,
    resume_chunks=8,
    cost_chunks=12,
    offline_chunks=6,
    quality_chunks=12,
    chunk_size_chars=3000,
    finish_hours=0.02,
    finish_short_hours=0.01,
    first_request_bytes=3000,
)


@pytest.mark.parametrize("width", [11, 40, 100])
def test_numbered_lines_make_one_chunk_each(width: int) -> None:
    text = texts.numbered_lines(25, width=width)
    chunks = split_document(parse_text(text), max_chars=width + 1)
    assert [c.text[:10] for c in chunks] == [f"Line {i:05d}" for i in range(25)]


def test_texts_are_deterministic_and_sized() -> None:
    assert texts.english(20_000) == texts.english(20_000)
    assert len(texts.english(20_000)) == 20_000
    chinese = texts.chinese(9000)
    assert chinese == texts.chinese(9000)
    assert 8990 <= len(chinese.encode()) <= 9000


@pytest.mark.slow
async def test_tiny_bench_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # The finishing and FLAC rows are the next test's, with these sizes; the cluster rows
    # are tests/test_bench_cluster.py's.
    rest = [c.__name__ for c in CASES if c.__name__ not in ("finishing", "flac", "cluster")]
    rows = await bench.run(TINY, scratch, only=rest)
    data = bench.to_json(rows, bench.machine_info(), TINY, 1.0)
    out.write_text(json.dumps(data), encoding="utf-8")
    table = bench.format_table(rows, data["machine"], title="tiny")

    loaded = json.loads(out.read_text(encoding="utf-8"))
    whats = [row["what"] for row in loaded["rows"]]
    failed = [row["figure"] for row in loaded["rows"] if row["figure"].startswith("failed")]
    assert not failed
    expected = [
        "split", "split", "stitch", "stitch", "stitch", "encode",
        "throughput", "throughput", "client CPU", "time", "end", "time",
        "adaptive", "adaptive", "chunk",
        "resume", "resume", "client CPU", "client peak", "offline",
        "quality", "quality", "quality", "quality",
        "read-along", "read-along",
    ]  # fmt: skip
    assert [w.split(" ")[0].rstrip(":") for w in whats] == [e.split(" ")[0] for e in expected]
    rebuilt, current = [r["data"] for r in loaded["rows"] if r["what"].startswith("resume")]
    assert rebuilt["first_requests"] == TINY.resume_chunks
    assert rebuilt["requests"] == current["requests"] == 0
    throughput = next(r for r in loaded["rows"] if r["what"].startswith("throughput:"))
    assert throughput["data"]["requests"] >= TINY.chunks
    assert throughput["data"]["max_in_flight"] <= 8
    sizes = next(r for r in loaded["rows"] if r["what"].startswith("chunk size"))["data"]
    assert sizes["4096"]["requests"] < sizes["600"]["requests"]  # the text fits one request
    assert all(r["data"]["peak_rss"] > 0 for r in loaded["rows"] if "peak_rss" in r["data"])
    assert loaded["machine"]["cores"] >= 1 and loaded["machine"]["python"]
    assert table.count("\n| ") == len(rows) + 1  # header row plus one line per row
    assert not list(scratch.rglob("*.m4b"))  # big outputs are removed once measured
    assumed, short = [r for r in loaded["rows"] if r["what"].startswith("read-along")]
    assert assumed["met"] is not None and short["met"] is None  # a goal, and a limit shown
    for row in (assumed, short):
        assert all(r["sentences"] > 5 for r in row["data"]["by_language"].values())
    assert not list(scratch.rglob("*.epub"))
    first, long_first = [r["data"] for r in loaded["rows"] if r["what"].startswith("time")]
    assert 0 < first["seconds_after_imports"] and first["imports"] > 0
    assert long_first["bytes"] == TINY.english_bytes


@pytest.mark.slow
async def test_finishing_rows_time_the_runs_and_measure_the_disk(tmp_path: Path) -> None:
    rows = await bench.run(TINY, tmp_path, only=["finishing", "flac"])
    assert not [r.figure for r in rows if r.figure.startswith("failed")]
    end, *tails, cache, extra, flac = rows
    run = end.data
    assert run["chunks"] >= 2 and not run["stopped_at_time_limit"]
    assert 0 < run["to_last_segment"] < run["seconds"]  # the tail is counted, not skipped
    # M4B then MP3, the short book then the long one (the end-to-end run's).
    assert [t.data["format"] for t in tails] == ["m4b", "mp3", "m4b", "mp3"]
    assert tails[0].data["audio_seconds"] < tails[2].data["audio_seconds"]
    assert tails[2].data["tail_seconds"] == run["tail_seconds"] and tails[2].ratio is not None
    assert all(t.data["rpm"] == 180 and t.data["book_bytes"] > 0 for t in tails)
    # 0.02 h of speech-like audio at 24 kHz 16-bit, every segment kept, nothing else counted as one.
    assert run["audio_seconds"] == pytest.approx(72, rel=0.1)
    assert cache.data["cache_segment_bytes"] == pytest.approx(
        run["audio_seconds"] * 48000, rel=0.05
    )
    assert cache.data["cache_bytes"] > cache.data["cache_segment_bytes"]
    m4b = extra.data["m4b"]
    assert m4b["folder_samples"] >= 1 and m4b["peak_folder_bytes"] >= m4b["book_bytes"] > 0
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".m4b", ".mp3", ".wav", ".flac")]
    sizes = flac.data
    assert 0 < sizes["ffmpeg"]["bytes"] < sizes["wav_bytes"]  # speech compresses, losslessly
    assert 30 < sizes["segment_seconds"] < 50 and sizes["cpu_seconds"] > 0


def test_cli_writes_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--only", "splitting", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [row["what"].split(" ")[0] for row in data["rows"]] == ["split", "split"]
    assert data["sizes"]["english_bytes"] == 100_000
    assert "| what" in printed and data["machine"]["cpu"] in printed
