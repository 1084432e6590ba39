"""What the pool works on and gives back: jobs, their outcomes, and the run's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store import Segment
from .quality import Measurement, Verdict
from .timeline import Timeline

__all__ = ["Job", "Made", "Outcome", "PoolStats", "Started"]


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk to turn into audio."""

    key: str
    text: str
    billing_chars: int


@dataclass(frozen=True, slots=True)
class Started:
    """What a worker's claim on a chunk found, so its first attempt need not ask the store
    again: the link of audio already paid for and not yet downloaded, if any."""

    url: str | None


@dataclass(frozen=True, slots=True)
class Made:
    """A chunk's audio fresh from the service: its segment, the requests and retries it
    took, and the quality gate's measurement when it was taken from the audio in memory
    (None: the gate reads the file)."""

    segment: Segment
    requests: int
    retries: int
    measurement: Measurement | None = None


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
