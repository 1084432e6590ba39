"""``narrator watch``: the command around :func:`narrator.watch.watch`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from ..chunks.lexicon import Lexicon
from ..errors import ConfigError
from ..pipeline import DocumentReport
from ..settings import Settings
from ..util.folders import check_writable, default_cache_dir
from ..util.registry import REGISTRY
from ..watch import WatchOptions, parse_until, queue, watch
from .build import announce_endpoint, make_settings

__all__ = ["cmd_status", "cmd_watch"]

log = logging.getLogger("narrator")


def _line(report: DocumentReport) -> None:
    """One line per document as it ends, for the journal (systemd) or a log file."""
    why = f": {report.errors[0]}" if report.errors else ""
    print(
        f"{report.status}: {report.input} -> {report.output or '-'} "
        f"({report.chunks} chunks, {report.requests} requests, "
        f"{report.billing_characters} characters){why}",
        file=sys.stderr,
        flush=True,
    )


def _budget_chars(args: argparse.Namespace, settings: Settings) -> int | None:
    """--budget-per-day in billing characters; None when there is nothing to pay."""
    price = REGISTRY[settings.provider].price_per_10k_chars
    price = args.price_per_10k_chars if price is None else price
    if args.budget_per_day is None or price == 0:
        return None
    return int(args.budget_per_day / price * 10_000)


def cmd_watch(args: argparse.Namespace) -> int:
    if len(args.inputs) != 1 or not Path(args.inputs[0]).is_dir():
        raise ConfigError("narrator watch takes one folder: narrator watch INBOX -o OUT")
    if not args.output:
        raise ConfigError("narrator watch needs -o DIR for the audiobooks")
    settings = make_settings(args, os.environ)
    Lexicon.load(*settings.lexicon, *settings.lexicon_override)
    check_writable(settings.store_dir, what="--cache-dir")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    check_writable(Path(args.output), what="-o")
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
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
    )

    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not "1 change detected"

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
            Path(args.output),
            settings,
            stop=stop,
            options=options,
            on_report=_line,
            on_ready=lambda: print(
                f"watching {args.inputs[0]} -> {args.output}", file=sys.stderr, flush=True
            ),
        )

    asyncio.run(main())
    # A stop asked for (SIGTERM from systemd, Ctrl-C) is a clean end: finished chunks
    # are in the store and the next start resumes.
    print("narrator: watcher stopped", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The watchers' queue, from the store: state, percent done, input, why."""
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
        print(f"{entry.state:<{width}}  {percent:>4}  {entry.input}{detail}")
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0
