"""The quality gate's benchmark (issue 10): recall on bad audio, false alarms on clean runs
of English and Chinese (eSpeak at 22 kHz, and the emulator at 24 kHz), and its CPU cost.

Recall and false alarms are read from the emulator's counters, per chunk: a chunk billed
once more than it got bad answers ended on a good one, every bad answer before it caught;
one billed exactly as often as it got bad answers ended on a bad one (caught but kept,
which the report flags, or missed); more than that means a good answer was redone.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ...synth.quality import Gate, measure_file
from ..emulator import EmulatorConfig, EmulatorStats, start_emulator
from . import texts
from .harness import KEY, BenchError, ChildRun, Progress, Row, Sizes, Workdir, chunked, run_child

__all__ = ["quality"]


def _books(work: Workdir, n: int) -> list[Path]:
    """An English and a Chinese document, about ``n`` chunks of varied length between them
    at --max-chars 200 (two thirds English)."""
    folder = work.path("texts")
    folder.mkdir()
    english, chinese = folder / "english.txt", folder / "chinese.txt"
    english.write_text(texts.english(n * 100), encoding="utf-8")
    chinese.write_text(texts.chinese(n * 100), encoding="utf-8")
    return [english, chinese]


async def _run(work: Workdir, inputs: list[Path], *flags: str) -> tuple[ChildRun, dict[str, Any]]:
    report = work.path("report.json")
    child = await run_child(
        work,
        "cli",
        "narrate",
        *map(str, inputs),
        "-o",
        str(work.path("books")),
        "--cache-dir",
        str(work.path("cache")),
        "--report",
        str(report),
        "--quiet",
        "--max-chars=200",
        "--concurrency=8",
        "--rpm=1000000",
        *flags,
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    if not all(d["status"] == "done" for d in data["documents"]):
        raise BenchError("a quality run did not finish its books")
    return child, data


def _tally(stats: EmulatorStats, flagged: int) -> dict[str, int]:
    bad = sum(stats.bad_audio.values())
    ended_bad = sum(billed == stats.bad_billed.get(k, 0) for k, billed in stats.billed.items())
    redone_good = sum(billed > stats.bad_billed.get(k, 0) + 1 for k, billed in stats.billed.items())
    return {
        "bad": bad,
        "missed": ended_bad - flagged,
        "flagged": flagged,
        "redone_good": redone_good,
        **{f"bad_{kind}": count for kind, count in stats.bad_audio.items()},
    }


async def quality(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """Recall, false alarms and CPU cost of the quality gate."""
    n = sizes.quality_chunks
    books = _books(work, n)
    rows: list[Row] = []

    progress(f"quality: detection over about {n} chunks, 30% bad answers")
    config = EmulatorConfig(api_key=KEY, engine="tone", bad_audio_rate=0.3, seed=1)
    async with await start_emulator(config) as emulator:
        _, report = await _run(
            work, books, "--base-url", emulator.url, "--api-key", KEY,
            "--qa-retries=8", "--qa-budget=400",
        )  # fmt: skip
        tally = _tally(emulator.stats, report["totals"]["flagged"])
    chunks = report["totals"]["chunks"]
    recall = (tally["bad"] - tally["missed"]) / max(1, tally["bad"])
    clean_book = tally["missed"] == 0 and tally["flagged"] == 0
    rows.append(
        Row(
            f"quality gate: recall, {chunks} chunks (English + Chinese), 10% each of silent, "
            "cut, runaway answers",
            f"{tally['bad'] - tally['missed']} of {tally['bad']} bad answers caught "
            f"({tally['bad_silent']} silent, {tally['bad_cut']} cut, {tally['bad_runaway']} "
            f"runaway); books hold {tally['missed'] + tally['flagged']} bad segments; "
            f"{tally['redone_good']} good answers redone",
            "every bad answer",
            recall,
            f"{recall:.3f}",
            "recall 1.0, none in the books",
            recall == 1.0 and clean_book and tally["redone_good"] == 0,
            {"chunks": chunks, **tally},
        )
    )

    progress("quality: false alarms, clean run with the eSpeak voice (22 kHz)")
    _, report = await _run(work, books, "--provider", "espeak")
    rows.append(_false_alarms(report, "eSpeak voice (22,050 Hz)"))

    progress("quality: false alarms, clean run through the emulator (eSpeak, 24 kHz)")
    async with await start_emulator(EmulatorConfig(api_key=KEY)) as emulator:
        _, report = await _run(work, books, "--base-url", emulator.url, "--api-key", KEY)
    rows.append(_false_alarms(report, "emulator (24 kHz)"))
    rows.append(await _cost(sizes, work, progress))
    return rows


async def _cost(sizes: Sizes, work: Workdir, progress: Progress) -> Row:
    """The gate's own CPU per segment, timed in this process over a run's segments, as a
    share of what the narrator process spends per chunk with the gate off."""
    n = sizes.quality_chunks * 2
    text, _ = chunked(n, 100)
    source = work.path("lines.txt")
    source.write_text(text, encoding="utf-8")
    flags = ("--max-chars=101", "--concurrency=8", "--rpm=1000000", "--quiet")
    progress(f"quality: CPU, {n} chunks of 100 characters, gate off then on")
    # Three times each, interleaved, the least of each kept: the machine may be shared.
    cpu: dict[str, float] = {}
    cache = work.path("cache")
    async with await start_emulator(EmulatorConfig(api_key=KEY, engine="tone")) as emulator:
        common = (str(source), "--base-url", emulator.url, "--api-key", KEY, *flags)
        for qa in ("off", "on") * 3:
            cache = work.path("cache")
            child = await run_child(
                work, "cli", "narrate", "-o", str(work.path("book.wav")), *common,
                "--cache-dir", str(cache), "--qa", qa,
            )  # fmt: skip
            cpu[qa] = min(cpu.get(qa, math.inf), child.cpu_seconds)
    segments = sorted(cache.glob("segments/*/*.wav"))
    gate = Gate()
    began = time.process_time()
    for path in segments:
        m = measure_file(path)
        gate.judge("bench", "x" * 100, m)
    gate_ms = (time.process_time() - began) / max(1, len(segments)) * 1000
    client_ms = cpu["off"] / n * 1000
    share = gate_ms / client_ms
    whole = (cpu["on"] - cpu["off"]) / cpu["off"]
    return Row(
        f"quality gate: CPU per segment ({n:,} chunks of 100 characters, ~6.7 s of audio each)",
        f"{gate_ms:.3f} ms (whole process, gate on vs off: {whole:+.0%})",
        f"client, gate off: {client_ms:.2f} ms per chunk",
        share,
        f"{share:.1%}",
        "< 10%",
        share < 0.10,
        {
            "segments": len(segments),
            "gate_ms": gate_ms,
            "client_ms": client_ms,
            "cpu_on": cpu["on"],
            "cpu_off": cpu["off"],
        },
    )


def _false_alarms(report: dict[str, Any], voice: str) -> Row:
    """The false-alarm row of a clean run's JSON report."""
    chunks = report["totals"]["chunks"]
    false = report["qa_resynthesized"] + report["totals"]["flagged"]
    return Row(
        f"quality gate: false alarms, clean {chunks}-chunk English + Chinese run, {voice}",
        f"{report['qa_resynthesized']} re-syntheses, {report['totals']['flagged']} flagged",
        "0",
        float(false),
        str(false),
        "0",
        false == 0,
        {"chunks": chunks, "resynthesized": report["qa_resynthesized"]},
    )
