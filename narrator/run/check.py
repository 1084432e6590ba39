"""``narrator check``: the quality gate over segments already in the store, sending nothing.

For books made before the gate existed, and for tuning its thresholds: each document is
split as a run would split it, its chunks' segments are looked up in the store and
measured, and the gate judges them in two passes — the first learns the voice's speech
rate from every segment (and what earlier runs stored), the second judges each segment
against it, so no judgment rests on the prior alone when the book gives enough to go on.

``prepare_fix`` marks the flagged segments for re-synthesis: the next narration judges
them first (free) and synthesizes them again while they are bad, as a run does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..chunks.split import Chunk
from ..settings import Settings
from ..store import Store
from ..synth.providers import Provider
from ..synth.quality import Gate, Measurement, measure_file
from .pipeline import Flag, Work, chunk_gap_ms
from .plan import Planner

__all__ = ["CheckReport", "check_documents", "prepare_fix"]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What the gate says of one document's stored segments.

    ``missing``: chunks with no audio in the store (never narrated, or narrated with
    other settings, or ``corrupt``: keys whose file is not a whole segment, or whose row
    names one outside the cache; the next run, or ``--fix``, makes them again). ``flagged`` start
    times are where each chunk starts when the segments are joined with the run's gaps
    (exact for WAV; with clean joins the book trims each segment's own silence, so its
    times run a little earlier).
    """

    input: str
    output: str
    chunks: int
    checked: int
    missing: int
    flagged: tuple[Flag, ...]
    keys: tuple[str, ...]  # the flagged segments' store keys, in the same order
    corrupt: tuple[str, ...] = ()


def check_documents(
    works: Sequence[Work], settings: Settings, provider: Provider, store: Store
) -> list[CheckReport]:
    """Judge the stored segments of ``works`` (see the module docstring). Sends nothing."""
    planner = Planner(settings, provider)
    gate = Gate()
    warmed: set[str] = set()

    def voice_key(chunk: Chunk) -> str:
        """The rates a chunk is judged by: its voice's (a cast gives voices out)."""
        key = f"{provider.identity}\0{chunk.voice or settings.voice}"
        if key not in warmed:
            warmed.add(key)
            gate.warm(key, store.learned_rates(key))
        return key

    plans = []
    for work in works:
        plan = planner.plan(work)
        chunks = plan.chunks
        measured: list[tuple[str, Measurement | None, float]] = []
        for chunk, key in plan.each_chunk():
            segment = store.lookup(key, repair=False)  # sends nothing, changes nothing
            m = measure_file(segment.path) if segment is not None else None
            measured.append((key, m, segment.seconds if segment is not None else 0.0))
            if m is not None and gate.judge(voice_key(chunk), chunk.text, m).ok:
                gate.passed(voice_key(chunk), chunk.text, m)
        plans.append((work, chunks, measured))
    reports = []
    for work, chunks, measured in plans:
        flags: list[Flag] = []
        keys: list[str] = []
        start, previous = 0.0, None
        for chunk, (key, m, seconds) in zip(chunks, measured, strict=True):
            start += chunk_gap_ms(settings, previous, chunk) / 1000
            previous = chunk
            if m is not None:
                verdict = gate.judge(voice_key(chunk), chunk.text, m)
                stored = store.verdict(key)
                if not verdict.ok:
                    attempts = stored.attempts if stored is not None else 1
                    flags.append(Flag.of(chunk, verdict, attempts=attempts, start=start))
                    keys.append(key)
            start += seconds
        checked = sum(m is not None for _, m, _ in measured)
        reports.append(
            CheckReport(
                input=work.document.source,
                output=str(work.output),
                chunks=len(chunks),
                checked=checked,
                missing=len(chunks) - checked,
                flagged=tuple(flags),
                keys=tuple(keys),
                corrupt=tuple(key for key, _, _ in measured if key in store.unusable),
            )
        )
    return reports


def prepare_fix(reports: Sequence[CheckReport], store: Store) -> int:
    """Mark every flagged segment for re-synthesis, and drop every corrupt one; how many
    were marked or dropped."""
    marked = 0
    for report in reports:
        for key in report.corrupt:
            store.lookup(key)  # drops what it cannot use: the next run makes it again
            marked += 1
        for key in report.keys:
            stored = store.verdict(key)
            verdict = stored.verdict if stored is not None else {}
            measurement = stored.measurement if stored is not None else {}
            # "retrying" with no attempt counted: the next run judges the file (free),
            # then synthesizes it again up to --qa-retries times, keeping the best.
            store.record_verdict(
                key, "retrying", attempts=0, verdict=verdict, measurement=measurement
            )
            marked += 1
    return marked


def as_dict(report: CheckReport) -> dict[str, object]:
    """A report as JSON-ready data."""
    data = dataclasses.asdict(report)
    del data["keys"]
    data["corrupt"] = len(report.corrupt)
    return data
