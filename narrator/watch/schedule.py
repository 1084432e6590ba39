"""What a watcher may start now, and its queue as ``narrator status`` shows it.

A document costs what the store does not have yet (an up-to-date book nothing, a book
half done before a restart only its missing chunks); the per-day budget and the
``--until`` deadline are weighed in those costs.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, NarratorError
from ..estimate import wall_clock
from ..run.plan import Plan, Planner
from ..run.results import DocumentReport, Work
from ..settings import Settings
from ..store.queue import read_queue
from ..store.spend import billed_since, paid_keys
from ..synth.providers import make_provider

__all__ = ["Pace", "QueueEntry", "admit", "keyed_chunks", "parse_until", "queue", "unpaid"]

log = logging.getLogger("narrator")


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_until(text: str, now: datetime.datetime) -> float:
    """``HH:MM`` (the next time the clock of ``now`` shows it) or a duration (``8h``,
    ``90m``, ``2h30m``, ``45s``) into seconds since the epoch."""
    hours, colon, minutes = text.partition(":")
    if colon and hours.isdigit() and minutes.isdigit():
        h, m = int(hours), int(minutes)
        if h > 23 or m > 59:
            raise ConfigError(f"--until {text}: not a time of day (HH:MM, 00:00 to 23:59)")
        at = now.replace(hour=h, minute=m, second=0, microsecond=0)
        if at <= now:
            at += datetime.timedelta(days=1)
        return at.timestamp()
    found = _DURATION.fullmatch(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        raise ConfigError(f"--until {text}: give a time of day (07:00) or a duration (8h, 90m)")
    h, m, sec = (int(g or 0) for g in found.groups())
    return now.timestamp() + h * 3600 + m * 60 + sec


async def keyed_chunks(
    works: Sequence[Work],
    settings: Settings,
    failed: list[tuple[Work, DocumentReport]] | None = None,
    *,
    off_loop: Callable[[Callable[[], list[Plan]]], Awaitable[list[Plan]]] = asyncio.to_thread,
) -> list[tuple[Plan, dict[str, int]]]:
    """Each document's plan (the run narrates it as it is, split once) with its chunks'
    segment keys and billing characters; one that cannot be planned goes to ``failed``
    with its report (without ``failed``, the error is raised). The plans are made by
    ``off_loop`` (a thread; the watcher's leaves it behind on a stop)."""
    provider = make_provider(settings)
    try:
        # One document's bad lexicon or cast, or respellings over their budget, fail it
        # alone: the watcher goes on with the others.
        planner = Planner(settings, provider)
        plans = await off_loop(functools.partial(planner.plan_all, works, failed, (NarratorError,)))
    finally:
        await provider.aclose()
    return [
        (plan, {key: c.billing_chars for c, key in zip(plan.chunks, plan.keys, strict=True)})
        for plan in plans
    ]


def unpaid(
    store_dir: Path, keyed: Sequence[tuple[Plan, dict[str, int]]], *, url: str | None = None
) -> dict[int, tuple[int, int]]:
    """Per document (by ``id`` of its work): the billing characters and the requests the
    store (``url``'s, if given) does not have yet."""
    result = {}
    for work, keys in keyed:
        paid = paid_keys(store_dir, keys, url=url)
        missing = [chars for key, chars in keys.items() if key not in paid]
        result[id(work)] = (sum(missing), len(missing))
    return result


class Pace:
    """Seconds a document will take: at the measured pace of this watcher's requests once
    it has one, else as ``narrator estimate`` reckons (rate limit, concurrency, latency)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.per_request: float | None = None

    def measured(self, requests: int, seconds: float) -> None:
        if requests > 0:
            self.per_request = seconds / requests

    def seconds(self, requests: int, settings: Settings) -> float:
        if self.per_request is not None:
            return requests * self.per_request
        return wall_clock(
            requests, rpm=settings.rpm, concurrency=settings.concurrency, latency=self.latency
        )

    def fit(
        self,
        works: Sequence[Plan],
        unpaid: dict[int, tuple[int, int]],
        settings: Settings,
        left: float,
    ) -> tuple[list[Plan], list[Plan]]:
        """Those of ``works`` (in order) that all finish within ``left`` seconds, and the
        rest; a document that does not fit is skipped, a later shorter one may still."""
        fits: list[Plan] = []
        late: list[Plan] = []
        requests = 0
        for work in works:
            more = unpaid[id(work)][1]
            # Admitted together, they share one pool: their requests add up.
            if self.seconds(requests + more, settings) <= left:
                fits.append(work)
                requests += more
            else:
                late.append(work)
                log.warning(
                    "waiting for deadline: %s needs about %.0f s more, %.0f s left",
                    work.document.source, self.seconds(more, settings), max(left, 0.0),
                )  # fmt: skip
        return fits, late


async def admit(
    keyed: Sequence[tuple[Plan, dict[str, int]]],
    settings: Settings,
    *,
    budget_chars: int,
    window: float,
    costs: dict[int, tuple[int, int]] | None = None,
    now: float | None = None,
) -> tuple[list[Plan], list[Plan]]:
    """Split the documents into those the budget pays for now, in order, and those that
    wait.

    A document costs what the store does not have yet: an up-to-date book or one half
    done before a restart costs nothing, or only its missing chunks.
    """
    now = time.time() if now is None else now
    spent = await asyncio.to_thread(
        billed_since, settings.store_dir, now - window, url=settings.store_url
    )
    left = budget_chars - spent
    admitted: list[Plan] = []
    waiting: list[Plan] = []
    if costs is None:
        costs = await asyncio.to_thread(unpaid, settings.store_dir, keyed, url=settings.store_url)
    for work, _ in keyed:
        cost = costs[id(work)][0]
        if cost <= left:
            admitted.append(work)
            left -= cost
        else:
            waiting.append(work)
            log.warning(
                "waiting for budget: %s needs %d billing characters, %d of %d left in the "
                "last %g hours",
                work.document.source, cost, max(left, 0), budget_chars,
                window / 3600,
            )  # fmt: skip
    return admitted, waiting


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One inbox document as ``narrator status`` shows it."""

    input: str
    output: str
    state: str  # waiting, waiting for budget, in progress, done, up-to-date, failed, ...
    detail: str
    percent: float | None  # of its chunks in the store; None when not yet cut
    updated: float  # seconds since the epoch


def queue(store_dir: Path, *, url: str | None = None) -> list[QueueEntry]:
    """What the watchers using ``store_dir`` (or the store at ``url``) have seen, read
    from the store: safe while they run, from any process."""
    entries = []
    for row in read_queue(store_dir, url=url):
        percent = None
        if row.keys:
            percent = 100.0 * len(paid_keys(store_dir, row.keys, url=url)) / len(row.keys)
        entries.append(
            QueueEntry(row.input, row.output, row.state, row.detail, percent, row.updated)
        )
    return entries
