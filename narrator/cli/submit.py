"""``narrator submit`` and ``watch --queue``: documents read and split here, put on the
shared queue as jobs for ``narrator worker`` (:mod:`narrator.cluster`), and followed."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..chunks.cast import local_casts
from ..chunks.lexicon import local_lexicons
from ..errors import ConfigError, QueueUnreachable
from ..run.plan import Planner
from ..settings import Settings
from ..synth.providers import make_provider
from ..util.plural import plural
from ..util.registry import REGISTRY
from ..util.s3url import is_s3_url, parse_url
from ..util.sanitize import clean_line, shown
from .build import load_works, make_settings
from .cluster import (
    add_queue_options,
    output_help,
    queue_config,
    service_urls,
)

__all__ = ["add_submit", "cmd_submit", "queue_narrate_for"]

log = logging.getLogger("narrator")


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
    output_help(
        p,
        "DEST",
        "a folder every worker can write (inside each worker's -o), or s3://BUCKET/PREFIX",
    )
    add_queue_options(p, required=True)
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the jobs to the end with a progress bar; exit 1 if a document failed",
    )
    p.set_defaults(func=cmd_submit)


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
    import redis

    from ..cli.commands import check_cost
    from ..cluster.jobs import make_job
    from ..cluster.submit import submit_jobs

    _refuse_local_paths(args)
    if not args.output:
        raise ConfigError(
            "narrator submit needs -o DEST: a folder every worker can write, or s3://BUCKET/PREFIX"
        )
    service_urls(args, "submit")
    queue = queue_config(args)
    env = dict(os.environ)
    variable = REGISTRY[args.provider].key_variable
    if variable and not (args.api_key or env.get(variable)):
        env[variable] = "submit-only"  # nothing is sent from here: the workers hold the keys
    settings = make_settings(args, env)
    if is_s3_url(args.output):  # the books' names are planned as if under a folder
        parse_url(args.output, setting="-o")
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
    sent: list[str] = []
    try:
        submit_jobs(queue, jobs, on_sent=sent.append)
    except redis.RedisError as exc:
        some = (
            f"; {len(sent)} of {len(jobs)} jobs were submitted" if sent else "; nothing submitted"
        )
        raise QueueUnreachable(
            f"the queue {queue.shown} is unreachable ({clean_line(type(exc).__name__)}){some}"
        ) from None
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


def queue_narrate_for(args: argparse.Namespace, dest: Path) -> Any:
    """``watch --queue``: how the watcher narrates a batch, as jobs for the workers."""
    from ..cluster.submit import queue_narrate

    _refuse_local_paths(args)
    settings = make_settings(args, {**os.environ, _key_variable(args): "submit-only"})
    return queue_narrate(queue_config(args), dest, _options(args, settings))


def _key_variable(args: argparse.Namespace) -> str:
    return REGISTRY[args.provider].key_variable or "NARRATOR_UNUSED_KEY"
