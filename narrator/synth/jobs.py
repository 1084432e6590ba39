"""What the pool works on and gives back: its knobs, jobs, their outcomes, and the run's
counters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..settings import Settings, default
from ..store import Segment
from .quality import Measurement, Verdict
from .timeline import Timeline

__all__ = ["Job", "Made", "Outcome", "PoolConfig", "PoolStats", "Started"]


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The pool's knobs; :meth:`of` reads them from a run's :class:`Settings`.

    The voice, the rate and the concurrency have no default here: they are the
    provider's (the settings fill them in). ``lease`` is how long a claim on a chunk
    holds; ``qa_budget`` the re-syntheses of bad segments the whole run may spend
    (None: no cap beyond ``qa_retries`` per segment).
    """

    voice: str
    concurrency: int
    rpm: float
    retries: int = default("retries")
    backoff_base: float = default("backoff_base")
    backoff_max: float = default("backoff_max")
    adaptive: bool = default("adaptive_rate")
    max_segment_bytes: int = default("max_segment_bytes")
    lease: float = 300.0
    claim_poll: float = 0.25
    qa_retries: int = default("qa_retries")
    qa_budget: int | None = None

    @classmethod
    def of(cls, settings: Settings, *, chunks: int | None = None) -> PoolConfig:
        """The pool of a run with ``settings``; ``chunks``, the run's chunk count, turns
        ``settings.qa_budget`` (a share of them) into re-syntheses."""
        budget = None
        if chunks is not None:
            # A bad segment may take qa_retries re-syntheses whatever the share says.
            budget = max(settings.qa_retries, math.ceil(settings.qa_budget / 100 * chunks))
        return cls(
            voice=settings.voice,
            concurrency=settings.concurrency,
            rpm=settings.rpm,
            retries=settings.retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            adaptive=settings.adaptive_rate,
            max_segment_bytes=settings.max_segment_bytes,
            lease=2 * settings.request_timeout + 60,  # one attempt: a request and a download
            qa_retries=settings.qa_retries,
            qa_budget=budget,
        )


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk to turn into audio."""

    key: str
    text: str
    billing_chars: int
    voice: str = ""  # "": the pool's voice (a cast gives some chunks voices of their own)


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
