"""``narrator worker``, ``narrator submit`` and ``status --queue``: the commands of several
machines sharing one queue (:mod:`narrator.cluster`). Redis and Dramatiq are imported
when one of these runs, never by the one-machine commands."""

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

from ..chunks.cast import local_casts
from ..chunks.lexicon import Lexicon, local_lexicons
from ..errors import ConfigError
from ..estimate import format_cost
from ..inputs.documents import Document
from ..run.plan import Planner
from ..settings import Settings
from ..synth.providers import make_provider
from ..util.folders import check_writable
from ..util.plural import plural
from ..util.registry import REGISTRY
from ..util.sanitize import clean_line, shown
from .argtypes import positive_float, positive_int
from .build import announce_endpoint, load_works, make_estimate, make_settings, over_limit

__all__ = [
    "add_queue_options", "add_submit", "add_worker", "cmd_cluster_status", "queue_narrate_for",
]  # fmt: skip

log = logging.getLogger("narrator")


def add_queue_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Where the queue is: --queue URL and --queue-name NAME."""
    p.add_argument(
        "--queue",
        required=required,
        metavar="redis://HOST:PORT/DB",
        help="the Redis server of the queue several machines share"
        + ("" if required else " (several machines: see docs/several-machines.md)"),
    )
    p.add_argument(
        "--queue-name",
        default="narrator",
        metavar="NAME",
        help="the cluster's name on that server (every key starts with it; default: narrator)",
    )


def _queue(args: argparse.Namespace) -> Any:
    from ..cluster.queue import QueueConfig

    return QueueConfig(args.queue, name=args.queue_name, heartbeat=getattr(args, "heartbeat", 20.0))


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
    add_queue_options(p, required=True)
    p.add_argument(
        "--documents",
        type=positive_int,
        default=2,
        metavar="N",
        help="documents this worker narrates at once (default: 2)",
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
        help="the shared store, postgresql://... (default: the SQLite store of --cache-dir)",
    )
    p.add_argument(
        "--objects",
        dest="objects_url",
        metavar="URL",
        help="segment audio in object storage, s3://BUCKET/PREFIX?endpoint=URL",
    )
    p.set_defaults(func=cmd_worker)


def add_submit(sub: Any, narrate_options: Callable[[argparse.ArgumentParser], None]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "submit",
        help="read and split documents here, put one job per document on a shared queue",
        usage="%(prog)s INPUT [INPUT ...] --queue redis://HOST:PORT/DB -o DEST [--wait] [options]",
        description="Read the inputs with narrate's rules and limits, check the cost like "
        "narrate, and enqueue one job per document for `narrator worker`s. DEST is a folder "
        "every worker can write (inside each worker's -o). See docs/several-machines.md.",
    )
    narrate_options(p)
    add_queue_options(p, required=True)
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the jobs to the end with a progress bar; exit 1 if a document failed",
    )
    p.set_defaults(func=cmd_submit)


# --- settings that exist only once the other branches are merged ------------------------


def _with_service(settings: Settings, name: str, value: str | None, flag: str) -> Settings:
    if not value:
        return settings
    if name not in {f.name for f in dataclasses.fields(Settings)}:
        raise ConfigError(f"{flag}: this narrator has no {flag} support yet")
    changes: dict[str, Any] = {name: value}
    return dataclasses.replace(settings, **changes)


# --- narrator worker --------------------------------------------------------------------


def _is_s3(value: str | None) -> bool:
    return isinstance(value, str) and value[:5].lower() == "s3://"


def _check_s3(url: str, flag: str) -> None:
    """An s3:// DEST is checked by the object store's own rules (the objects branch)."""
    try:
        from ..store.objects import parse_url
    except ImportError:
        raise ConfigError(f"{flag} s3://...: this narrator has no object storage yet") from None
    parse_url(url, setting=flag)


def _guard(args: argparse.Namespace) -> Callable[[Document, Settings], str | None]:
    """The worker's own spending guard per document: --max-cost, else --confirm-above
    unless --yes, like narrate's; a job can raise neither."""
    price = REGISTRY[args.provider].price_per_10k_chars

    def guard(document: Document, settings: Settings) -> str | None:
        if price == 0:
            return None
        if args.max_cost is not None:
            limit, flag = args.max_cost, "--max-cost"
        elif not args.yes:
            limit, flag = args.confirm_above, "--confirm-above"
        else:
            return None
        if not over_limit(args, [document], limit):
            return None
        cost = make_estimate(args, [document]).cost
        if cost <= limit:
            return None
        return (
            f"the estimate is {format_cost(cost)}, over this worker's {flag} {format_cost(limit)}"
        )

    return guard


def cmd_worker(args: argparse.Namespace) -> int:
    from ..cluster.worker import ClusterWorker, WorkerConfig

    if not args.output:
        raise ConfigError("narrator worker needs -o DIR: the folder it writes books under")
    logging.getLogger("dramatiq").setLevel(logging.CRITICAL)  # its lines are ours to say
    queue = _queue(args)
    settings = make_settings(args, os.environ)
    settings = _with_service(settings, "store_url", args.store_url, "--store")
    settings = _with_service(settings, "objects_url", args.objects_url, "--objects")
    if "pacing_url" in {f.name for f in dataclasses.fields(Settings)}:
        # One pace per account across every worker: the limiter lives beside the queue.
        pacing: dict[str, Any] = {"pacing_url": args.queue}
        settings = dataclasses.replace(settings, **pacing)
    Lexicon.load(*settings.lexicon, *settings.lexicon_override)
    check_writable(settings.store_dir, what="--cache-dir")
    root_url = args.output if _is_s3(args.output) else None
    root = Path(args.output) if root_url is None else settings.store_dir / "cluster-books"
    if root_url is not None:
        _check_s3(root_url, "-o")
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
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("narrator: worker stopped", file=sys.stderr, flush=True)
    return 0


# --- narrator submit --------------------------------------------------------------------


def _options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """What a job carries of the command line: only what was asked for (the voice, the
    size of a chunk), the gaps, the gate and the audiobook's format and tags."""
    from ..cluster.jobs import audiobook_options

    options: dict[str, Any] = {
        "lang": args.lang,
        "gap_ms": settings.gap_ms,
        "chapter_gap_ms": settings.chapter_gap_ms,
        "paragraph_gap_ms": settings.paragraph_gap_ms,
        "quote_gap_ms": settings.quote_gap_ms,
        "speaker_lines": settings.speaker_lines,
        "qa": settings.qa,
        "force": settings.force,
        "audiobook": audiobook_options(settings.audiobook),
    }
    if args.voice:
        options["voice"] = settings.voice
    if getattr(args, "dialogue_voice", None):
        options["dialogue_voice"] = settings.dialogue_voice
    if args.max_chars:
        options["max_chars"] = args.max_chars
    return options


def _refuse_local_paths(args: argparse.Namespace) -> None:
    for flag, value in (("--cover", args.cover), ("--read-along", args.read_along)):
        if value:
            raise ConfigError(f"{flag}: a job carries no file; give it to the workers instead")
    if args.lexicon or args.cast:
        raise ConfigError(
            "--lexicon and --cast are files each worker reads: pass them to `narrator worker`"
        )


def cmd_submit(args: argparse.Namespace) -> int:
    from ..cli.commands import check_cost
    from ..cluster.jobs import make_job
    from ..cluster.submit import submit_jobs

    _refuse_local_paths(args)
    if not args.output:
        raise ConfigError(
            "narrator submit needs -o DEST: a folder every worker can write, or s3://BUCKET/PREFIX"
        )
    queue = _queue(args)
    env = dict(os.environ)
    variable = REGISTRY[args.provider].key_variable
    if variable and not (args.api_key or env.get(variable)):
        env[variable] = "submit-only"  # nothing is sent from here: the workers hold the keys
    settings = make_settings(args, env)
    if _is_s3(args.output):  # the books' names are planned as if under a folder
        _check_s3(args.output, "-o")
        dest_name = args.output.partition("?")[0].rstrip("/")  # the endpoint is the workers'
        dest = Path(os.sep, "narrator-s3-dest")
    else:
        dest = Path(args.output).resolve()
        dest_name = str(dest)
    args.output = str(dest) + os.sep  # always a folder of books
    works, unread, _ = load_works(args, settings.base_url)
    for report in unread:
        print(
            shown(f"{report.status}: {report.input}: {'; '.join(report.errors)}"), file=sys.stderr
        )
    if not works:
        raise ConfigError("nothing to submit: every input was empty or unreadable")
    check_cost(args, settings, [work.document for work in works])
    options = _options(args, settings)
    planner = Planner(settings, make_provider(settings))
    jobs = []
    for work in works:
        source = work.document.source
        if local_lexicons(source) or local_casts(source):
            log.warning(
                "%s: its lexicon or cast beside it stays here; pass it to the workers",
                clean_line(source),
            )
        chunks = len(planner.plan(work).chunks)
        name = source
        output = work.output.relative_to(dest).as_posix()
        jobs.append((make_job(work.document, name=name, dest=dest_name, output=output,
                              options=options), chunks))  # fmt: skip
    submit_jobs(queue, jobs)
    for job, chunks in jobs:
        print(shown(f"{job.id}  {job.name} -> {job.output}  {plural(chunks, 'chunk')}"))
    sys.stdout.flush()
    if not args.wait:
        return 0
    return _wait(queue, jobs, quiet=args.quiet)


def _wait(queue: Any, jobs: list[tuple[Any, int]], *, quiet: bool) -> int:
    from tqdm import tqdm

    from ..cluster.submit import follow

    total = sum(chunks for _, chunks in jobs)
    bar = tqdm(total=total, unit="chunk", desc="narrating", disable=True if quiet else None,
               dynamic_ncols=True)  # fmt: skip
    announced: set[str] = set()

    def on_change(found: list[Any]) -> None:
        done = sum(s.chunks if s.state == "done" else s.done for s in found)
        bar.n = min(done, total)
        running = sum(s.state == "running" for s in found)
        bar.set_postfix_str(f"{running} running", refresh=False)
        bar.refresh()
        for s in found:
            if s.final and s.id not in announced:
                announced.add(s.id)
                why = f": {s.error}" if s.error and s.state == "failed" else ""
                bar.write(shown(f"{s.state}: {s.name} -> {s.output}{why}"), file=sys.stderr)

    def on_unreachable(exc: BaseException | None) -> None:
        if exc is None:
            bar.write("narrator: the queue is back", file=sys.stderr)
        else:
            bar.write(
                shown(f"narrator: the queue {queue.shown} is unreachable; waiting for it"),
                file=sys.stderr,
            )

    try:
        found = follow(queue, [job.id for job, _ in jobs], on_change, on_unreachable=on_unreachable)
    except KeyboardInterrupt:
        bar.close()
        print(
            shown(f"narrator: stopped following; the jobs go on (narrator status --queue "
                  f"{queue.shown.split(' ')[0]})"),
            file=sys.stderr,
        )  # fmt: skip
        return 130
    bar.close()
    failed = [s for s in found if s.state == "failed"]
    missing = len(jobs) - len(found)
    print(
        shown(f"{plural(len(found) - len(failed), 'document')} done, {len(failed)} failed"
              + (f", {missing} no longer on the queue" if missing else "")),
        file=sys.stderr,
    )  # fmt: skip
    return 1 if failed or missing else 0


# --- narrator status --queue ------------------------------------------------------------


def cmd_cluster_status(args: argparse.Namespace) -> int:
    import redis

    from ..cluster.queue import paces, states

    queue = _queue(args)
    try:
        client = queue.client()
        found = states(client, queue)
        pace = paces(client)
    except redis.RedisError as exc:
        raise ConfigError(
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


def queue_narrate_for(args: argparse.Namespace, dest: Path) -> Any:
    """``watch --queue``: how the watcher narrates a batch, as jobs for the workers."""
    from ..cluster.submit import queue_narrate

    _refuse_local_paths(args)
    settings = make_settings(args, {**os.environ, _key_variable(args): "submit-only"})
    return queue_narrate(_queue(args), dest, _options(args, settings))


def _key_variable(args: argparse.Namespace) -> str:
    return REGISTRY[args.provider].key_variable or "NARRATOR_UNUSED_KEY"
