"""``narrator submit``'s engine: put jobs on the queue, and follow them to the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dramatiq.message import Message

from .jobs import Job, job_data
from .queue import ACTOR, QUEUE, JobState, QueueConfig, note, states

__all__ = ["follow", "submit_jobs"]


def submit_jobs(queue: QueueConfig, jobs: Sequence[tuple[Job, int]]) -> None:
    """Enqueue each job (with its chunk count, for the progress its state shows). Its
    state is written first, so a worker's "running" is never overwritten by "queued"."""
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
