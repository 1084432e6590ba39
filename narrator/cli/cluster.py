"""``narrator worker`` and ``status --queue``, and the queue options every cluster command
takes (``submit`` and ``watch --queue``: :mod:`.submit`); see :mod:`narrator.cluster`.
Redis and Dramatiq are imported when one of these runs, never by the one-machine commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..chunks.lexicon import Lexicon
from ..errors import ConfigError, QueueUnreachable
from ..estimate import format_cost
from ..inputs.documents import Document
from ..settings import Settings
from ..util.folders import check_writable
from ..util.plural import plural
from ..util.s3url import is_s3_url, parse_url
from ..util.sanitize import clean_line, shown
from .argtypes import positive_float, positive_int
from .build import (
    announce_endpoint,
    assumed_price,
    make_estimate,
    make_settings,
    over_limit,
    spending_limit,
)

__all__ = [
    "add_queue_options", "add_worker", "cmd_cluster_status", "output_help", "queue_config",
    "service_urls",
]  # fmt: skip

log = logging.getLogger("narrator")


# Where a worker or a submit finds a service when its flag is not given: a URL with a
# password is better kept out of the process list (`ps` shows every argument).
QUEUE_VARIABLE, STORE_VARIABLE, OBJECTS_VARIABLE = (
    "NARRATOR_QUEUE", "NARRATOR_STORE", "NARRATOR_OBJECTS",
)  # fmt: skip


def add_queue_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Where the queue is: --queue URL (or $NARRATOR_QUEUE where it is required) and
    --queue-name NAME."""
    p.add_argument(
        "--queue",
        metavar="redis://HOST:PORT/DB",
        help="the Redis server of the queue several machines share"
        + (
            f" (default: ${QUEUE_VARIABLE})"
            if required
            else " (several machines: see docs/several-machines.md)"
        ),
    )
    p.add_argument(
        "--queue-name",
        default="narrator",
        metavar="NAME",
        help="the cluster's name on that server (every key starts with it; default: narrator)",
    )


def service_urls(args: argparse.Namespace, command: str) -> None:
    """Fill --queue, --store and --objects left out from the environment; a worker or a
    submit with no queue at all is told how to name one."""
    for dest, variable in (
        ("queue", QUEUE_VARIABLE), ("store_url", STORE_VARIABLE), ("objects_url", OBJECTS_VARIABLE),
    ):  # fmt: skip
        if hasattr(args, dest) and not getattr(args, dest):
            setattr(args, dest, os.environ.get(variable) or None)
    if not args.queue:
        raise ConfigError(
            f"narrator {command} needs the queue: --queue redis://HOST:PORT/DB, "
            f"or ${QUEUE_VARIABLE} in the environment"
        )


def queue_config(args: argparse.Namespace) -> Any:
    from ..cluster.queue import QueueConfig

    return QueueConfig(args.queue, name=args.queue_name, heartbeat=getattr(args, "heartbeat", 20.0))


def output_help(p: argparse.ArgumentParser, metavar: str, text: str) -> None:
    """-o as this command reads it (narrate's help speaks of one input or several)."""
    for action in p._actions:
        if action.dest == "output":
            action.metavar, action.help = metavar, text


def _without_inputs(p: argparse.ArgumentParser) -> None:
    """narrate's options without its INPUT list (a worker reads the queue)."""
    for action in list(p._actions):  # argparse offers no public way to drop an argument
        if action.dest == "inputs":
            p._remove_action(action)
            for group in p._action_groups:
                if action in group._group_actions:
                    group._group_actions.remove(action)


def add_worker(sub: Any, narrate_options: Callable[[argparse.ArgumentParser], None]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="narrate documents from a queue several machines share, until stopped",
        usage="%(prog)s --queue redis://HOST:PORT/DB -o DIR [--documents N] [options]",
        description="Take document jobs from the queue (put there by `narrator submit`) and "
        "narrate them with this machine's key, endpoint and pace; SIGTERM finishes the "
        "requests in flight and hands the rest back to the queue. See "
        "docs/several-machines.md.",
    )
    narrate_options(p)
    _without_inputs(p)
    output_help(
        p,
        "ROOT",
        "the folder (or s3://BUCKET/PREFIX?endpoint=URL) this worker writes books under: "
        "a job's DEST must be inside it",
    )
    add_queue_options(p, required=True)
    p.add_argument(
        "--documents",
        type=positive_int,
        default=4,
        metavar="N",
        help="documents this worker narrates at once, so one's tail overlaps the next (default: 4)",
    )
    p.add_argument(
        "--tries",
        type=positive_int,
        default=3,
        metavar="N",
        help="tries of a document before it is failed (default: 3)",
    )
    p.add_argument(
        "--heartbeat",
        type=positive_float,
        default=20.0,
        metavar="S",
        help="seconds without a heartbeat after which a worker's documents go to another "
        "(default: 20)",
    )
    p.add_argument(
        "--store",
        dest="store_url",
        metavar="URL",
        help=f"the shared store, postgresql://... (default: ${STORE_VARIABLE}, else the SQLite "
        "store of --cache-dir)",
    )
    p.add_argument(
        "--objects",
        dest="objects_url",
        metavar="URL",
        help="segment audio in object storage, s3://BUCKET/PREFIX?endpoint=URL (default: "
        f"${OBJECTS_VARIABLE})",
    )
    p.set_defaults(func=cmd_worker)


# --- narrator worker --------------------------------------------------------------------


def _guard(args: argparse.Namespace) -> Callable[[Document, Settings], str | None]:
    """The worker's own spending guard per document: --max-cost, else --confirm-above
    unless --yes, like narrate's; a job can raise neither."""
    chosen = spending_limit(args, assumed_price(args, args.provider))

    def guard(document: Document, settings: Settings) -> str | None:
        if chosen is None:
            return None
        limit, flag = chosen
        if not over_limit(args, [document], limit):
            return None
        cost = make_estimate(args, [document]).cost
        if cost <= limit:
            return None
        return (
            f"the estimate is {format_cost(cost)}, over this worker's {flag} {format_cost(limit)}"
        )

    return guard


def _not_dramatiq_s_connection_errors(record: logging.LogRecord) -> bool:
    """The worker says once that the queue is unreachable, and once that it is back."""
    return not (record.name.startswith("dramatiq") and "connection error" in record.getMessage())


def cmd_worker(args: argparse.Namespace) -> int:
    from ..cluster.worker import ClusterWorker, WorkerConfig

    if not args.output:
        raise ConfigError("narrator worker needs -o DIR: the folder it writes books under")
    # Dramatiq's lines are ours to say: a lost connection once, not every second.
    dramatiq_log = logging.getLogger("dramatiq")
    dramatiq_log.setLevel(logging.CRITICAL)
    for handler in logging.getLogger().handlers:  # a logger's filter misses its children's
        handler.addFilter(_not_dramatiq_s_connection_errors)
    service_urls(args, "worker")
    queue = queue_config(args)
    settings = make_settings(args, os.environ)
    # The shared store and object storage, and one pace per account across every worker:
    # the limiter lives beside the queue.
    settings = dataclasses.replace(
        settings,
        store_url=args.store_url or None,
        objects_url=args.objects_url or None,
        pacing_url=args.queue,
    )
    Lexicon.load(*settings.lexicon, *settings.lexicon_override)
    check_writable(settings.store_dir, what="--cache-dir")
    root_url = args.output if is_s3_url(args.output) else None
    root = Path(args.output) if root_url is None else settings.store_dir / "cluster-books"
    if root_url is not None:
        parse_url(root_url, setting="-o")
    root.mkdir(parents=True, exist_ok=True)
    check_writable(root, what="-o")
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    config = WorkerConfig(
        queue=queue,
        settings=settings,
        root=root,
        documents=args.documents,
        tries=args.tries,
        guard=_guard(args),
        root_url=root_url,
    )
    worker = ClusterWorker(config)
    asked = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if asked.is_set():
            return
        asked.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.start()
        print(
            shown(
                f"worker {worker.name}: taking documents from {queue.shown} into "
                f"{root_url.partition('?')[0] if root_url else root}"
            ),
            file=sys.stderr,
            flush=True,
        )
        while not asked.wait(0.5):
            pass
        log.warning("stopping: no new documents; requests in flight finish, the rest go back")
        worker.stop()
    finally:
        for signum, earlier in previous.items():
            signal.signal(signum, earlier)
    print("narrator: worker stopped", file=sys.stderr, flush=True)
    return 0


# --- narrator status --queue ------------------------------------------------------------


def cmd_cluster_status(args: argparse.Namespace) -> int:
    import redis

    from ..cluster.queue import paces, states

    queue = queue_config(args)
    try:
        client = queue.client()
        found = states(client, queue)
        pace = paces(client)
    except redis.RedisError as exc:
        raise QueueUnreachable(
            f"the queue {queue.shown} is unreachable ({clean_line(type(exc).__name__)})"
        ) from None
    if args.json:
        data = {"queue": queue.shown, "documents": [s.as_dict() for s in found],
                "pace": [p.as_dict() for p in pace]}  # fmt: skip
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    for p in pace:
        rpm = "?" if p.rpm is None else f"{p.rpm:g}"
        ceiling = "" if p.ceiling is None or p.ceiling == p.rpm else f" (ceiling {p.ceiling:g})"
        print(shown(f"pace: account {p.account}: {rpm} rpm now{ceiling}, "
                    f"{plural(p.in_flight, 'request')} in flight"))  # fmt: skip
    if not found:
        print(shown(f"{queue.shown}: no documents"))
        return 0
    width = max(len(s.state) for s in found)
    counts: dict[str, int] = {}
    for s in found:
        counts[s.state] = counts.get(s.state, 0) + 1
        percent = "" if s.percent is None else f"{s.percent:3.0f}%"
        detail = []
        if s.state == "running" and s.worker:
            detail.append(s.worker)
        if s.tries > 1:
            detail.append(f"try {s.tries}")
        if s.error and s.state in ("failed", "retrying", "queued"):
            detail.append(s.error)
        more = f"  ({'; '.join(detail)})" if detail else ""
        print(shown(f"{s.state:<{width}}  {percent:>4}  {s.name} -> {s.output}{more}"))
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0
