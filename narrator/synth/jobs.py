"""What the pool works on and gives back: jobs, their outcomes, and the run's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from .quality import Measurement, Verdict
from .store import Segment
from .timeline import Timeline

__all__ = ["Job", "Outcome", "PoolStats"]


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk to turn into audio."""

    key: str
    text: str
    billing_chars: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished job: its audio and what it took."""

    segment: Segment
    requests: int
    retries: int
    cached: bool
    # The quality gate's word, when it runs: its verdict, what it measured, how many
    # attempts were judged, and whether the segment is flagged (bad, kept anyway).
    verdict: Verdict | None = None
    measurement: Measurement | None = None
    attempts: int = 1
    flagged: bool = False


@dataclass
class PoolStats:
    """Counters for the report."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    resynthesized: int = 0
    downloads: int = 0
    rate_changes: list[tuple[float, float]] = field(default_factory=list)
    qa_resynthesized: int = 0  # bad segments synthesized again
    qa_flagged: int = 0  # segments kept although bad
    qa_budget_spent: bool = False
    timeline: Timeline = field(default_factory=Timeline)  # per second, for the report
