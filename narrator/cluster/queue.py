"""The queue: Dramatiq's Redis broker, the one actor name every worker and submitter
agrees on, and each job's state where ``status`` and ``submit --wait`` read it.

Why Dramatiq: its Redis broker acknowledges late (a message is removed only when its
actor returns) and every worker heartbeats, so the messages a killed worker held go back
on the queue once its heartbeat is ``heartbeat`` seconds old, while a long book is never
handed out twice as long as its worker lives (taskiq-redis' idle timeout would); async
actors run on its event loop thread; it is maintained. Celery is not asyncio-native, and
arq is in maintenance-only mode.

Each job's state is a Redis hash with a week's TTL (``NAME:job:ID``), indexed by submit
time (``NAME:jobs``): Redis is the one service every worker and submitter already shares
(the store may be one machine's SQLite), and a state nobody asks about expires by itself.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # imported by the cluster's commands only, when they run
    import redis
    from dramatiq.brokers.redis import RedisBroker

__all__ = [
    "ACTOR",
    "QUEUE",
    "STATES",
    "JobState",
    "QueueConfig",
    "masked",
    "worker_name",
]

log = logging.getLogger("narrator")

ACTOR = "narrate_document"
QUEUE = "documents"
STATES = ("queued", "running", "retrying", "done", "failed")
STATE_TTL = 7 * 24 * 3600  # seconds a job's state is kept after its last change
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def masked(url: str) -> str:
    """``url`` with its password (and user) replaced by ``***``: what a line may show."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<a URL>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def worker_name() -> str:
    """How ``status`` names this process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Where the queue is: a ``redis://`` (or ``rediss://``) URL, the cluster's name
    (every key starts with it, so clusters can share one Redis), and after how many
    seconds without a heartbeat a worker's documents go back on the queue."""

    url: str
    name: str = "narrator"
    heartbeat: float = 20.0

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"--queue {masked(self.url)}: name a Redis server, redis://HOST:PORT/DB",
                setting="queue",
            )
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"--queue-name {self.name!r}: letters, digits, '.', '_' and '-' only",
                setting="queue_name",
            )
        if not 1 <= self.heartbeat <= 3600:
            raise ConfigError("--heartbeat is between 1 and 3600 seconds", setting="heartbeat")

    @property
    def shown(self) -> str:
        return f"{masked(self.url)} ({self.name})"

    def client(self) -> redis.Redis:
        import redis

        return redis.Redis.from_url(
            self.url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=10
        )

    def broker(self, middleware: list[Any] | None = None) -> RedisBroker:
        """Dramatiq's broker on this queue: maintenance (giving a dead worker's messages
        back) on every fetch, not one in a thousand, so it happens within a second of the
        heartbeat timeout: three small commands in the fetch script."""
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(  # type: ignore[no-untyped-call]
            client=self.client(),
            namespace=f"{self.name}.q",
            middleware=middleware if middleware is not None else [],
            heartbeat_timeout=int(self.heartbeat * 1000),
            maintenance_chance=1_000_000,
        )

    def job_key(self, job_id: str) -> str:
        return f"{self.name}:job:{job_id}"

    @property
    def index_key(self) -> str:
        return f"{self.name}:jobs"


@dataclass(frozen=True, slots=True)
class JobState:
    """What ``status`` shows of one job."""

    id: str
    state: str
    name: str
    output: str
    chunks: int
    done: int
    worker: str
    tries: int
    error: str
    updated: float

    @property
    def percent(self) -> float | None:
        if self.state == "done":
            return 100.0
        return 100.0 * self.done / self.chunks if self.chunks else None

    @property
    def final(self) -> bool:
        return self.state in ("done", "failed")

    @classmethod
    def of(cls, job_id: str, raw: Mapping[bytes, bytes]) -> JobState:
        def text(key: str) -> str:
            return raw.get(key.encode(), b"").decode("utf-8", "replace")

        def number(key: str) -> int:
            try:
                return int(text(key) or 0)
            except ValueError:
                return 0

        try:
            updated = float(text("updated") or 0)
        except ValueError:
            updated = 0.0
        state = text("state")
        return cls(
            id=job_id,
            state=state if state in STATES else "unknown",
            name=text("name"),
            output=text("output"),
            chunks=number("chunks"),
            done=number("done"),
            worker=text("worker"),
            tries=number("tries"),
            error=text("error"),
            updated=updated,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "document": self.name, "output": self.output,
            "chunks": self.chunks, "done_chunks": self.done, "percent": self.percent,
            "worker": self.worker or None, "tries": self.tries, "error": self.error or None,
            "updated": self.updated,
        }  # fmt: skip


def note(client: redis.Redis, queue: QueueConfig, job_id: str, **fields: Any) -> None:
    """Set fields of a job's state (and keep it another week)."""
    key = queue.job_key(job_id)
    values: dict[Any, Any] = {k: str(v) for k, v in fields.items()}
    values["updated"] = f"{time.time():.3f}"
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, mapping=values)
    pipe.expire(key, STATE_TTL)
    pipe.execute()


def states(
    client: redis.Redis, queue: QueueConfig, ids: Iterable[str] | None = None
) -> list[JobState]:
    """The states of ``ids`` (default: every job submitted to this queue, oldest first);
    a state that expired is dropped from the index."""
    if ids is None:
        listed: list[Any] = client.zrange(queue.index_key, 0, -1)
        ids = [i.decode() for i in listed]
    ids = list(ids)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(queue.job_key(job_id))
    found: list[JobState] = []
    gone: list[str] = []
    for job_id, raw in zip(ids, pipe.execute(), strict=True):
        if raw:
            found.append(JobState.of(job_id, raw))
        else:
            gone.append(job_id)
    if gone:
        client.zrem(queue.index_key, *gone)
    return found


# The shared limiter's keys (narrator.cluster.pacing, the limiter's): one rate hash and one
# sorted set of slot leases per account, named by the account's fingerprint.
PACE_PREFIX = "narrator:pace:"
MAX_ACCOUNTS = 50  # accounts status shows at most


@dataclass(frozen=True, slots=True)
class AccountPace:
    """One account's pace now: its fingerprint (never the key), the rate every worker
    shares, its ceiling after a 429 cut, and the requests in flight."""

    account: str
    rpm: float | None
    ceiling: float | None
    in_flight: int

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "rpm": self.rpm, "ceiling": self.ceiling,
                "in_flight": self.in_flight}  # fmt: skip


def paces(client: redis.Redis) -> list[AccountPace]:
    """Every account's pace in the shared limiter's state on this Redis (none when no
    worker paces through it)."""
    found: list[AccountPace] = []
    seconds, micros = client.time()
    now = float(seconds) + float(micros) / 1e6
    for raw in client.scan_iter(match=f"{PACE_PREFIX}*:rate", count=200):
        key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        base = key.removesuffix(":rate")
        account = base.removeprefix(PACE_PREFIX).strip("{}")
        rpm, ceiling = client.hmget(key, ["rpm", "ceiling"])
        in_flight = client.zcount(f"{base}:slots", now, "+inf")
        found.append(AccountPace(account[:12], _number(rpm), _number(ceiling), int(in_flight)))
        if len(found) >= MAX_ACCOUNTS:
            break
    return found


def _number(value: Any) -> float | None:
    try:
        return round(float(value), 1)
    except (TypeError, ValueError):
        return None
