"""Retakes: the quality gate at work in the pool.

Every segment is judged (:mod:`narrator.synth.quality`) once it is in the store. A bad one is
synthesized again — billed again, and the log says so — up to ``retries`` times while
the run's ``budget`` lasts; the least bad attempt is set aside
meanwhile (``segments/qa/``) and kept, flagged, when no attempt passes, so the book is
finished and a chunk bad on every attempt never loops. Segments passed while the run
knew too little of its voice (``provisional``) are judged again once their document is
in. Every verdict is a row in the store: a rerun, or a run resumed after a kill, neither
judges nor pays again for a segment that passed, and carries on a retry it cut short.

The budget counts the re-syntheses that fixed nothing. A re-take that passes gives its
share back: while re-takes fix what they redo (a service that fails at random) they go
on, so a book with a few percent of bad answers ends clean; when they do not (a voice
that always trips the gate, a text it cannot read) the budget runs out after a few
wasted requests and the rest is kept and flagged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import NarratorError
from ..store import Segment, StoredVerdict
from ..store.thread import StoreThread
from .jobs import Made, Started
from .pool import Job, Outcome, PoolStats
from .quality import Gate, Measurement, Verdict, measure_file, rate_of

__all__ = ["Retakes"]


log = logging.getLogger("narrator")


class Retakes:
    """Judges a pool's segments and has the bad ones made again (see the module docstring).

    ``synthesize(job, again)`` makes a chunk's audio once more (``again``: the answers
    turned down so far); ``stopped()`` is what to raise rather than start more work.
    """

    def __init__(
        self,
        gate: Gate,
        db: StoreThread,
        *,
        voice_key: str,
        retries: int,
        budget: int | None,
        stats: PoolStats,
        synthesize: Callable[[Job, int, Started | None], Awaitable[Made]],
        stopped: Callable[[], NarratorError | None],
    ) -> None:
        self.gate = gate
        self.db = db
        self.store = db.store
        self.voice_key = voice_key  # rates are learned per provider and voice
        self.retries = retries
        # Re-syntheses that may still fix nothing (a re-take that passes gives its share
        # back, see the module docstring); None: no limit.
        self.budget = budget
        self.stats = stats
        self._synthesize = synthesize
        self._stopped = stopped
        self._rechecks: dict[str, asyncio.Future[Outcome]] = {}
        self._warm: set[str] = set()

    def key_of(self, job: Job) -> str:
        """The rates ``job`` is judged by: its own voice's, when a cast gave it one."""
        if not job.voice:
            return self.voice_key
        return f"{self.voice_key.partition(chr(0))[0]}\0{job.voice}"

    async def warm(self, voice_key: str | None = None) -> None:
        """Start from a voice's speech rate as earlier runs measured it (once per voice)."""
        voice_key = voice_key or self.voice_key
        if voice_key in self._warm:
            return
        self._warm.add(voice_key)
        learned = await self.db.run(self.store.learned_rates, voice_key)
        self.gate.warm(voice_key, learned)

    @staticmethod
    def settled(stored: StoredVerdict | None) -> bool:
        """The stored segment was judged and nothing is left to do for it."""
        return stored is not None and stored.status != "retrying"

    @staticmethod
    def settled_outcome(cached: Segment, stored: StoredVerdict) -> Outcome:
        """The outcome of a stored segment already judged: no request, no judging."""
        return Outcome(
            cached,
            0,
            0,
            cached=True,
            verdict=Verdict(**stored.verdict),
            measurement=Measurement(**stored.measurement),
            attempts=stored.attempts,
            flagged=stored.status == "flagged",
        )

    async def run(
        self,
        job: Job,
        cached: Segment | None,
        stored: StoredVerdict | None,
        started: Started | None = None,
    ) -> Outcome:
        """The outcome of ``job`` given what the store holds: its segment (if any still
        good) and the verdict on it (if any), and what the claim found. The pool holds
        the chunk's claim."""
        # A bad attempt whose re-synthesis was cut short (by a kill, say) carries on.
        retrying = stored if stored is not None and stored.status == "retrying" else None
        await self.warm(self.key_of(job))
        if cached is not None:
            if stored is not None and retrying is None:
                return self.settled_outcome(cached, stored)
            # Never judged (made before the gate, or a kill came first), or a bad attempt
            # whose re-synthesis was cut short: judged now, which costs nothing.
            return await self._judged(job, cached, 0, 0, cached=True, retrying=retrying)
        made = await self._synthesize(job, 0, started)
        return await self._judged(
            job, made.segment, made.requests, made.retries, cached=False, retrying=retrying,
            measured=made.measurement,
        )  # fmt: skip

    async def recheck(self, job: Job, outcome: Outcome) -> Outcome:
        """Judge a provisional pass again, now that the run knows its voice better; a
        segment that fails now is synthesized again like any other bad one."""
        if outcome.verdict is None or not outcome.verdict.provisional:
            return outcome
        if outcome.flagged or outcome.measurement is None:
            return outcome
        future = self._rechecks.get(job.key)
        if future is None:  # one chunk text twice in a run is judged once
            future = asyncio.ensure_future(self._recheck(job, outcome))
            self._rechecks[job.key] = future
        return await asyncio.shield(future)

    async def _recheck(self, job: Job, outcome: Outcome) -> Outcome:
        assert outcome.measurement is not None
        verdict = self.gate.judge(self.key_of(job), job.text, outcome.measurement)
        if verdict.ok and verdict.provisional:
            return outcome  # still too little to go on: the prior's pass stands
        if verdict.ok:  # learned from the first time it passed
            await self._passed(job, verdict, outcome.measurement, outcome.attempts, learn=False)
            return dataclasses.replace(outcome, verdict=verdict)
        return await self._judged(
            job,
            outcome.segment,
            outcome.requests,
            outcome.retries,
            cached=outcome.cached,
            done=outcome.attempts - 1,  # the same attempt, judged again
            first=(outcome.measurement, verdict),
        )

    async def _passed(
        self,
        job: Job,
        verdict: Verdict,
        m: Measurement,
        attempts: int,
        *,
        learn: bool = True,
        aside: bool = False,
    ) -> None:
        # Provisional passes teach too: they are all the run has at first, and the
        # median shrugs off the odd bad one among them.
        if learn:
            learned = self.gate.passed(self.key_of(job), job.text, m)
        else:
            learned = rate_of(job.text, m)
        if aside:  # a worse attempt than this one was kept aside
            await self.db.run(self.store.discard_aside, job.key)
        # Not awaited: lost (a kill, a full disk), the next run judges the segment again,
        # which costs nothing.
        self.db.post(
            self.store.record_verdict,
            job.key,
            "provisional" if verdict.provisional else "passed",
            attempts=attempts,
            verdict=_fields(verdict),
            measurement=_fields(m),
            learned=(self.key_of(job), *learned) if learned else None,
        )

    async def _judged(
        self,
        job: Job,
        segment: Segment,
        requests: int,
        retries: int,
        *,
        cached: bool,
        retrying: StoredVerdict | None = None,
        done: int = 0,
        first: tuple[Measurement, Verdict] | None = None,
        measured: Measurement | None = None,
    ) -> Outcome:
        """Judge ``segment``; synthesize it again while it is bad and retries are left.

        ``retrying``: the verdict row of an earlier run's unfinished retries (its attempts
        and best attempt carry on); ``done``: attempts judged before this one;
        ``measured``: the segment's measurement, when it was taken as it was stored.
        """
        gate, db, store = self.gate, self.db, self.store
        attempts = retrying.attempts if retrying is not None else done
        best = retrying.best if retrying is not None else None
        aside = retrying is not None
        retake = False  # the attempt judged now is a re-synthesis the budget paid for
        while True:
            attempts += 1
            if first is not None:
                m, verdict = first
                first = None
            else:
                if measured is None:
                    measured = await asyncio.to_thread(measure_file, segment.path)
                m, measured = measured, None
                verdict = gate.judge(self.key_of(job), job.text, m)
            if verdict.ok:
                if retake and not verdict.provisional and self.budget is not None:
                    # It fixed what it redid: that cost the budget nothing. (A provisional
                    # pass may be a bad answer the wide prior let through: no refund.)
                    self.budget += 1
                await self._passed(job, verdict, m, attempts, aside=aside)
                return Outcome(segment, requests, retries, cached, verdict, m, attempts)
            current = {"verdict": _fields(verdict), "measurement": _fields(m)}
            better = best is None or verdict.badness < best["verdict"]["badness"]
            more = attempts <= self.retries
            if more and (stop := self._stopped()) is not None:
                raise stop  # judged again on the next run, for nothing
            retake = False
            if more and self.budget is not None:
                if self.budget > 0:
                    # Taken at once: the awaits below let other chunks read the budget too.
                    self.budget -= 1
                    retake = True
                else:
                    more = False
                    if not self.stats.qa_budget_spent:
                        self.stats.qa_budget_spent = True
                        log.warning(
                            "the quality budget is spent (--qa-budget): synthesizing bad "
                            "segments again stopped fixing them, so they are kept and flagged "
                            "from now on; a voice that always trips the gate? `narrator check` "
                            "shows what was flagged"
                        )
            if not more:
                if not better:
                    restored = await db.run(store.restore_aside, job.key)
                    if restored is not None and best is not None:
                        segment = restored
                        verdict = Verdict(**best["verdict"])
                        m = Measurement(**best["measurement"])
                        current = best
                await db.run(store.discard_aside, job.key)
                await db.run(
                    store.record_verdict,
                    job.key,
                    "flagged",
                    attempts=attempts,
                    verdict=current["verdict"],
                    measurement=current["measurement"],
                )
                self.stats.qa_flagged += 1
                log.warning(
                    "chunk %r: %s (%s) after %d attempts; kept and flagged",
                    _snippet(job.text), verdict.kind, verdict.reason, attempts,
                )  # fmt: skip
                return Outcome(segment, requests, retries, cached, verdict, m, attempts, True)
            if better:
                best = current
            # The verdict first: killed before the file moves, the next run judges it again
            # (free); the other way round it could not tell a retry from a first try.
            await db.run(
                store.record_verdict,
                job.key,
                "retrying",
                attempts=attempts,
                verdict=current["verdict"],
                measurement=current["measurement"],
                best=best,
            )
            if better:
                await db.run(store.set_aside, job.key)
                aside = True
            else:
                await db.run(store.drop_segment, job.key)
            self.stats.qa_resynthesized += 1
            log.warning(
                "chunk %r: %s (%s); synthesizing it again (billed again)",
                _snippet(job.text), verdict.kind, verdict.reason,
            )  # fmt: skip
            made = await self._synthesize(job, attempts, None)
            segment, measured = made.segment, made.measurement
            requests += made.requests
            retries += made.retries
            cached = False


def _snippet(text: str) -> str:
    """The start of a chunk's text on one line, for the log."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 40 else flat[:39] + "…"


def _fields(item: Verdict | Measurement) -> dict[str, Any]:
    """A flat dataclass as a dict (``dataclasses.asdict`` deep-copies: slower, per chunk)."""
    return {name: getattr(item, name) for name in item.__slots__}
