"""``narrator submit``'s engine: put jobs on the queue, and follow them to the end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dramatiq.message import Message

from ..run.pipeline import DocumentReport, Plan, ProgressCallback, ProgressEvent, RunReport
from ..run.results import stopped_report
from ..run.status import Status
from ..settings import Settings
from .jobs import Job, job_data, make_job
from .queue import ACTOR, QUEUE, JobState, QueueConfig, note, states

__all__ = ["follow", "queue_narrate", "submit_jobs"]


def submit_jobs(
    queue: QueueConfig,
    jobs: Sequence[tuple[Job, int]],
    *,
    on_sent: Callable[[str], None] = lambda job_id: None,
) -> None:
    """Enqueue each job (with its chunk count, for the progress its state shows), telling
    ``on_sent`` each id as it is on the queue. Its state is written first, so a worker's
    "running" is never overwritten by "queued"."""
    broker = queue.broker()
    client = broker.client
    try:
        for job, chunks in jobs:
            note(client, queue, job.id, state="queued", name=job.name, output=job.output,
                 chunks=chunks, done=0, tries=0, error="", worker="", starts=0)  # fmt: skip
            client.zadd(queue.index_key, {job.id: time.time()})
            broker.enqueue(
                Message(
                    queue_name=QUEUE,
                    actor_name=ACTOR,
                    args=(job_data(job),),
                    kwargs={},
                    options={},
                )
            )
            on_sent(job.id)
    finally:
        broker.close()


def follow(
    queue: QueueConfig,
    ids: Sequence[str],
    on_change: Callable[[list[JobState]], None],
    *,
    poll: float = 0.5,
    on_unreachable: Callable[[BaseException | None], None] = lambda exc: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobState]:
    """Read the jobs' states every ``poll`` seconds until each is done or failed; the
    Redis server may go away for a while (``on_unreachable`` hears of it, and of its
    return as None)."""
    import redis

    client = queue.client()
    away = False
    try:
        while True:
            try:
                found = states(client, queue, ids)
            except redis.RedisError as exc:
                if not away:
                    on_unreachable(exc)
                away = True
                sleep(poll)
                continue
            if away:
                on_unreachable(None)
                away = False
            on_change(found)
            if len(found) == len(ids) and all(s.final for s in found):
                return found
            if len(found) < len(ids):  # a state expired or was deleted: nothing to wait for
                return found
            sleep(poll)
    finally:
        client.close()


def queue_narrate(
    queue: QueueConfig, dest: Path, options: Mapping[str, Any], *, poll: float = 0.5
) -> Callable[[list[Plan], Settings, asyncio.Event, ProgressCallback], Awaitable[RunReport]]:
    """How ``narrator watch --queue`` narrates a batch: it submits each planned document
    as a job and follows the jobs until they end (or a stop), reporting each book as its
    job ends, so the watcher's lines, queue rows and --on-done hooks work as they do on
    one machine. ``dest``: the absolute folder the books go under."""

    async def run(
        plans: list[Plan], settings: Settings, stop: asyncio.Event, progress: ProgressCallback
    ) -> RunReport:
        jobs = [
            (
                make_job(
                    plan.document,
                    name=plan.document.source,
                    dest=str(dest),
                    output=plan.output.relative_to(dest).as_posix(),
                    options=options,
                ),
                len(plan.chunks),
            )
            for plan in plans
        ]
        await asyncio.to_thread(submit_jobs, queue, jobs)
        client = queue.client()
        pending = {job.id: (job, plan) for (job, _), plan in zip(jobs, plans, strict=True)}
        reports: list[DocumentReport] = []
        try:
            while pending and not stop.is_set():
                try:
                    found = await asyncio.to_thread(states, client, queue, list(pending))
                except Exception:  # redis' errors: the jobs go on; look again shortly
                    found = []
                for state in found:
                    if not state.final:
                        continue
                    _, plan = pending.pop(state.id)
                    report = _report_of(plan, state)
                    reports.append(report)
                    progress(ProgressEvent("document", report=report))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)
        finally:
            client.close()
        for _, plan in pending.values():  # still on the queue: the workers go on with them
            reports.append(stopped_report(plan.work, plan.chunks, plan.warnings))
        stopped = "interrupted" if pending else None
        return RunReport(tuple(reports), 0, 0, 0, 0, 0.0, stopped=stopped)

    return run


def _report_of(plan: Plan, state: JobState) -> DocumentReport:
    return DocumentReport(
        input=plan.document.source, output=str(plan.output), title=plan.document.title,
        status=Status.DONE if state.state == "done" else Status.FAILED,
        chunks=len(plan.chunks), billing_characters=plan.billing_chars, audio_seconds=0.0,
        requests=0, retries=0, cached_chunks=0,
        errors=(state.error,) if state.state != "done" and state.error else (),
    )  # fmt: skip
