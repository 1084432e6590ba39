"""``narrator watch``: the command around :func:`narrator.watch.watcher.watch`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..chunks.lexicon import Lexicon
from ..errors import ConfigError
from ..estimate import format_cost
from ..run.pipeline import DocumentReport
from ..settings import Settings
from ..store import check_store
from ..util.folders import check_writable, default_cache_dir
from ..util.plural import plural
from ..util.registry import REGISTRY
from ..util.sanitize import shown
from ..watch.schedule import parse_until, queue
from ..watch.watcher import WatchOptions, watch
from .argtypes import non_negative_float
from .build import announce_endpoint, assumed_price, make_settings, spending_limit
from .cluster import add_queue_options, cmd_cluster_status
from .submit import queue_narrate_for

__all__ = ["add_status", "add_watch", "cmd_status", "cmd_watch"]

log = logging.getLogger("narrator")


def _line(report: DocumentReport) -> None:
    """One line per document as it ends, for the journal (systemd) or a log file."""
    why = f": {report.errors[0]}" if report.errors else ""
    print(
        shown(
            f"{report.status}: {report.input} -> {report.output or '-'} "
            f"({plural(report.chunks, 'chunk')}, {plural(report.requests, 'request')}, "
            f"{plural(report.billing_characters, 'character')}){why}"
        ),
        file=sys.stderr,
        flush=True,
    )


def _budget_chars(args: argparse.Namespace, settings: Settings) -> int | None:
    """--budget-per-day in billing characters; None when there is nothing to pay."""
    price = assumed_price(args, settings.provider)
    if args.budget_per_day is None or price == 0:
        return None
    return int(args.budget_per_day / price * 10_000)


def _doc_limit(args: argparse.Namespace, settings: Settings) -> tuple[int | None, str]:
    """The most billing characters one document may cost, and why, like narrate's guard:
    --max-cost, else --confirm-above unless --yes or --budget-per-day (a limit the user
    chose); none when there is nothing to pay."""
    price = assumed_price(args, settings.provider)
    chosen = spending_limit(args, price)
    if chosen is None:
        return None, ""
    limit, flag = chosen
    if flag == "--max-cost":
        why = f"over --max-cost {format_cost(limit)}"
    elif args.budget_per_day is None:
        why = (
            f"over --confirm-above {format_cost(limit)}: not sent; check it with "
            "`narrator estimate`, then narrate it with --yes or --max-cost USD"
        )
    else:  # a daily budget is a limit the user chose: no confirmation on top of it
        return None, ""
    return int(limit / price * 10_000), why


def cmd_watch(args: argparse.Namespace) -> int:
    if len(args.inputs) != 1 or not Path(args.inputs[0]).is_dir():
        raise ConfigError("narrator watch takes one folder: narrator watch INBOX -o OUT")
    if not args.output:
        raise ConfigError("narrator watch needs -o DIR for the audiobooks")
    if args.read_along:
        raise ConfigError(
            "--read-along names one book: narrator watch makes many (use --format epub)"
        )
    env = dict(os.environ)
    if args.queue:  # the workers hold the keys: nothing is sent from here
        variable = REGISTRY[args.provider].key_variable
        if variable and not (args.api_key or env.get(variable)):
            env[variable] = "submit-only"
    settings = make_settings(args, env)
    Lexicon.load(*settings.lexicon, *settings.lexicon_override)
    check_writable(settings.store_dir, what="--cache-dir")
    # refused now, not when the first document arrives
    check_store(settings.store_dir, url=settings.store_url)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    check_writable(Path(args.output), what="-o")
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    limit, why = _doc_limit(args, settings)
    options = WatchOptions(
        settle=args.settle,
        fmt=getattr(args, "format", None),
        include=args.include or (),
        exclude=args.exclude or (),
        on_done=args.on_done,
        max_text_bytes=int(args.max_text_mb * 1_000_000),
        budget_chars=_budget_chars(args, settings),
        deadline=None
        if args.until is None
        else parse_until(args.until, datetime.now().astimezone()),
        order=args.order,
        latency=args.assume_latency,
        max_doc_chars=limit,
        max_doc_why=why,
    )

    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not "1 change detected"
    out = Path(args.output)
    narrate = None
    if args.queue:  # several machines: each document becomes a job for the workers
        out = out.resolve()
        narrate = queue_narrate_for(args, out)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                return
            log.warning("stopping: no new requests; waiting a few seconds for those in flight")
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        await watch(
            Path(args.inputs[0]),
            out,
            settings,
            stop=stop,
            options=options,
            narrate=narrate,
            on_report=_line,
            on_ready=lambda: print(
                shown(f"watching {args.inputs[0]} -> {args.output}"), file=sys.stderr, flush=True
            ),
        )

    asyncio.run(main())
    # A stop asked for (SIGTERM from systemd, Ctrl-C) is a clean end: finished chunks
    # are in the store and the next start resumes.
    print("narrator: watcher stopped", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The watchers' queue, from the store: state, percent done, input, why; with
    --queue, the shared queue's documents (:func:`narrator.cli.cluster.cmd_cluster_status`)."""
    if getattr(args, "queue", None):
        return cmd_cluster_status(args)
    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    entries = queue(root)
    if not entries:
        print(f"{root}: no watched documents")
        return 0
    width = max(len(e.state) for e in entries)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.state] = counts.get(entry.state, 0) + 1
        percent = "" if entry.percent is None else f"{entry.percent:3.0f}%"
        detail = f"  ({entry.detail})" if entry.detail else ""
        print(shown(f"{entry.state:<{width}}  {percent:>4}  {entry.input}{detail}"))
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0


def add_watch(sub: Any, narrate_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``narrator watch`` to the subcommands: ``narrate``'s options and its own."""
    p: argparse.ArgumentParser = sub.add_parser(
        "watch",
        help="narrate an inbox folder's documents as they arrive, until stopped",
        usage="%(prog)s INBOX -o DIR [--voice NAME] [--provider NAME] [--on-done CMD] [options]",
    )
    narrate_options(p)
    p.add_argument(
        "--settle",
        type=non_negative_float,
        default=2.0,
        metavar="S",
        help="read a file only once it has not changed for S seconds",
    )
    p.add_argument(
        "--on-done",
        metavar="CMD",
        help="shell command run per finished book, with $NARRATOR_BOOK, $NARRATOR_INPUT "
        "and $NARRATOR_TITLE set; its failure is logged, never fatal",
    )
    p.add_argument(
        "--budget-per-day",
        type=non_negative_float,
        metavar="USD",
        help="spend at most USD in any 24 hours (at --price-per-10k-chars), counted from the "
        "store, across restarts; documents over it wait",
    )
    p.add_argument(
        "--until",
        metavar="HH:MM|DURATION",
        help="finish by then (07:00, or 8h, 90m): start only the documents estimated to end "
        "in time, at the measured pace, and stop cleanly at it",
    )
    p.add_argument(
        "--order",
        choices=["shortest", "name"],
        default="shortest",
        help="which documents go first: the shortest (the most books finished by a "
        "deadline) or by name",
    )
    add_queue_options(p, required=False)
    p.set_defaults(func=cmd_watch)


def add_status(sub: Any) -> None:
    """Add ``narrator status`` to the subcommands."""
    p = sub.add_parser(
        "status",
        help="show the queue of `narrator watch` (from the store), or with --queue the shared one",
    )
    p.add_argument(
        "--cache-dir",
        "--store",
        dest="cache_dir",
        help="segment store (default: $XDG_CACHE_HOME/narrator)",
    )
    add_queue_options(p, required=False)
    p.add_argument("--json", action="store_true", help="with --queue: the states as JSON")
    p.set_defaults(func=cmd_status)
