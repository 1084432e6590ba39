"""The run's timeline: what the pool did, second by second, for the report's charts.

The pool notes each request it starts (with the requests then in flight and the rate it
was paced at), each 429 (and whether it cut the rate) and each retry. Counts are kept
per second of the run, so the state grows with the run's length, not its size (a 10-hour
run is 36,000 small rows however many chunks it sends), and :meth:`Timeline.series`
folds them into at most a few hundred buckets for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUCKETS", "Series", "Timeline"]

# Bucket widths the series picks from: round numbers a reader takes in at a glance.
BUCKETS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
_MAX_BUCKETS = 10_000  # what a report read back may hold


@dataclass(slots=True)
class _Second:
    starts: int = 0
    throttled: int = 0
    cuts: int = 0
    retries: int = 0
    peak: int = 0  # requests in flight, the most seen at a start
    rpm: float = math.inf  # the lowest pace a request started at


@dataclass(frozen=True, slots=True)
class Series:
    """The timeline in buckets of ``bucket`` seconds from the run's first request.

    Every tuple has one entry per bucket. ``rpm`` is the lowest rate a request in the
    bucket was paced at (None: no request started, or no limit).
    """

    bucket: int
    starts: tuple[int, ...]
    throttled: tuple[int, ...]
    cuts: tuple[int, ...]
    retries: tuple[int, ...]
    peak: tuple[int, ...]
    rpm: tuple[float | None, ...]

    @property
    def seconds(self) -> int:
        return self.bucket * len(self.starts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        """The series a JSON report holds; ``ValueError`` or ``TypeError`` when a value
        is not a count (or, for ``rpm``, a rate or null) or a series is not as long as
        ``starts``: a report is read as data, whatever it holds."""
        counts = {
            name: tuple(int(v) for v in data.get(name) or ())
            for name in ("starts", "throttled", "cuts", "retries", "peak")
        }
        rpm = tuple(None if v is None else float(v) for v in data.get("rpm") or ())
        if len(counts["starts"]) > _MAX_BUCKETS:  # series() folds a run into a few hundred
            raise ValueError(f"a timeline of more than {_MAX_BUCKETS:,} buckets")
        if any(len(v) != len(counts["starts"]) for v in (*counts.values(), rpm)):
            raise ValueError("the timeline's series differ in length")
        bucket = int(data["bucket"])
        if bucket < 1:
            raise ValueError(f"a timeline bucket of {bucket} s")
        return cls(bucket=bucket, rpm=rpm, **counts)


@dataclass(slots=True)
class Timeline:
    """Counts per second of the run, in the loop's time; the first request is second 0."""

    origin: float | None = None
    _seconds: dict[int, _Second] = field(default_factory=dict)

    def _at(self, now: float) -> _Second:
        if self.origin is None:
            self.origin = now
        second = max(0, int(now - self.origin))
        return self._seconds.setdefault(second, _Second())

    def started(self, now: float, *, in_flight: int, rpm: float) -> None:
        row = self._at(now)
        row.starts += 1
        row.peak = max(row.peak, in_flight)
        row.rpm = min(row.rpm, rpm)

    def throttled(self, now: float, *, cut: bool) -> None:
        row = self._at(now)
        row.throttled += 1
        row.cuts += cut

    def retried(self, now: float) -> None:
        self._at(now).retries += 1

    def series(self, *, most: int = 240) -> Series | None:
        """At most ``most`` buckets of the narrowest width in :data:`BUCKETS` that fits."""
        if not self._seconds:
            return None
        length = max(self._seconds) + 1
        bucket = next((b for b in BUCKETS if length <= b * most), math.ceil(length / most))
        rows = [_Second() for _ in range(math.ceil(length / bucket))]
        for second, row in self._seconds.items():
            into = rows[second // bucket]
            into.starts += row.starts
            into.throttled += row.throttled
            into.cuts += row.cuts
            into.retries += row.retries
            into.peak = max(into.peak, row.peak)
            into.rpm = min(into.rpm, row.rpm)
        return Series(
            bucket=bucket,
            starts=tuple(r.starts for r in rows),
            throttled=tuple(r.throttled for r in rows),
            cuts=tuple(r.cuts for r in rows),
            retries=tuple(r.retries for r in rows),
            peak=tuple(r.peak for r in rows),
            rpm=tuple(None if math.isinf(r.rpm) else round(r.rpm, 2) for r in rows),
        )
