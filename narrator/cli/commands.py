"""The commands: each takes the parsed arguments and returns the exit code.

0 all done, 1 some document failed (or the account ran out of credits), 2 a usage or
configuration error, 128 + the signal when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.contrib.logging import logging_redirect_tqdm

from ..book.encode import FORMATS
from ..book.readalong import is_read_along
from ..chunks.lexicon import Lexicon
from ..errors import ConfigError
from ..estimate import format_cost
from ..inputs.documents import Document
from ..report.writer import read_report, render_html, write_report
from ..run.batch import with_unread
from ..run.pipeline import DocumentReport, RunReport, Work, casting_for, narrate_many
from ..run.status import Status
from ..settings import Settings, check_lang
from ..synth.providers import make_provider
from ..util.folders import check_writable, default_cache_dir, output_folder
from ..util.plural import plural
from ..util.registry import REGISTRY, describe_pace
from ..util.sanitize import shown
from .build import (
    announce_endpoint,
    assumed_price,
    load,
    load_works,
    make_estimate,
    make_settings,
    over_limit,
    report_command,
    spending_limit,
)
from .flags import as_flags
from .render import ProgressBar, flag_line, print_estimate, print_summary, print_unread

if TYPE_CHECKING:
    from ..run.check import CheckReport

__all__ = [
    "check_cost", "cmd_cache", "cmd_check", "cmd_demo", "cmd_estimate", "cmd_feed", "cmd_narrate",
    "cmd_report", "cmd_serve", "cmd_voices",
]  # fmt: skip

log = logging.getLogger("narrator")


# Signals this close together are one interrupt delivered several ways; a person's
# second Ctrl-C comes later.
_SAME_INTERRUPT = 0.5


async def _narrate(works: list[Work], settings: Settings, *, quiet: bool) -> tuple[RunReport, int]:
    stop = asyncio.Event()
    caught: list[int] = []
    loop = asyncio.get_running_loop()

    first: list[float] = []

    def on_signal(signum: int) -> None:
        if caught:
            # A signal sent to the whole process group (`timeout -s INT`, a supervisor, a
            # shell) arrives twice, or once per wrapper, within moments: one interrupt.
            # A second Ctrl-C typed later stops waiting for the requests in flight.
            if loop.time() - first[0] < _SAME_INTERRUPT:
                return
            raise KeyboardInterrupt
        caught.append(signum)
        first.append(loop.time())
        log.warning("stopping: no new requests; waiting a few seconds for those in flight")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    bar = ProgressBar(quiet)
    try:
        with logging_redirect_tqdm():
            run = await narrate_many(works, settings, on_progress=bar, stop=stop)
    finally:
        bar.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return run, (128 + caught[0]) if caught else 0


def _run_narrate(
    works: list[Work],
    settings: Settings,
    *,
    quiet: bool,
    report: str | None,
    unread: Sequence[DocumentReport] = (),
    inputs: Sequence[str] = (),
    argv: Sequence[str] = (),
) -> int:
    if works:
        run, interrupted = asyncio.run(_narrate(works, settings, quiet=quiet))
    else:  # every input failed to read: nothing to send, but still a table and a report
        run, interrupted = RunReport((), 0, 0, 0, 0, 0.0), 0
    # Inputs that never became documents take their place in the table, in input order.
    run = with_unread(run, unread, inputs)
    if report:
        write_report(Path(report), run, settings, command=report_command(argv, settings))
    print_summary(run)
    if interrupted:
        print(
            "narrator: interrupted; finished chunks are saved, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return interrupted
    if run.stop_error is not None:
        said = shown(as_flags(str(run.stop_error)))
        if run.stop_error.exit_code == ConfigError.exit_code:  # fix the settings: no resume
            print(f"narrator: {said}", file=sys.stderr)
            return run.stop_error.exit_code
        print(
            f"narrator: {said}; everything finished so far is kept, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return run.stop_error.exit_code
    return 0 if run.ok else 1


def cmd_estimate(args: argparse.Namespace) -> int:
    check_lang(args.lang)
    _, loaded = load(args, outputs=False)
    if not loaded.documents and not any(r.status == Status.FAILED for r in loaded.unread):
        raise ConfigError(_nothing_left(loaded.unread))  # as `narrate` says of the same inputs
    print_unread(loaded.unread)
    result = make_estimate(args, [doc for _, doc in loaded.documents])
    for source, why in result.failed:
        print(f"FAILED: {shown(source)}: {shown(why)}", file=sys.stderr)
    print_estimate(result)
    return 1 if result.failed or any(r.status == Status.FAILED for r in loaded.unread) else 0


def _nothing_left(unread: Sequence[DocumentReport]) -> str:
    """One line: nothing is left to narrate, and why (the first few inputs' reasons)."""
    why = "; ".join(f"{r.input}: {r.errors[0]}" for r in unread[:3] if r.errors)
    more = f"; and {len(unread) - 3} more" if len(unread) > 3 else ""
    return f"nothing to narrate: every input was empty or unreadable ({why}{more})"


def cmd_narrate(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_estimate(args)
    settings = make_settings(args, os.environ)
    Lexicon.load(*settings.lexicon, *settings.lexicon_override)  # a bad one: a clear error now
    casting_for(settings, "-")  # the same for a named cast, and every voice in it
    # Before anything is fetched, sent or paid for: every folder the run writes to.
    check_writable(settings.store_dir, what="--cache-dir")
    if args.report:
        check_writable(Path(args.report).parent, what="--report")
    if args.output:
        check_writable(output_folder(args.output), what="-o")
    works, unread, order = load_works(args, settings.base_url)
    for folder in sorted({work.output.parent for work in works}):
        check_writable(folder, what="the audiobook's folder")
    if not works and not any(report.status == Status.FAILED for report in unread):
        raise ConfigError(_nothing_left(unread))
    check_cost(args, settings, [work.document for work in works])
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    return _run_narrate(
        works,
        settings,
        quiet=args.quiet,
        report=args.report,
        unread=unread,
        inputs=order,
        argv=getattr(args, "argv", ()),
    )


def check_cost(args: argparse.Namespace, settings: Settings, documents: list[Document]) -> None:
    """Refuse a run whose estimate is over --max-cost, or over --confirm-above without
    --yes (narrate's guard; submit's too)."""
    # Counted first without splitting (the split of a long book takes seconds): only a
    # run whose most possible cost is over its limit is split to be estimated.
    chosen = spending_limit(args, assumed_price(args, settings.provider))
    if chosen is None:
        return
    limit, flag = chosen
    result = make_estimate(args, documents) if over_limit(args, documents, limit) else None
    if result is None or result.cost <= limit:
        return
    if flag == "--max-cost":
        raise ConfigError(
            f"the estimate is {format_cost(result.cost)} for {result.chunks} requests and "
            f"{result.billing_characters:,} billing characters (at "
            f"{format_cost(result.price_per_10k_chars)} per 10,000), over --max-cost "
            f"{format_cost(limit)}; nothing was sent"
        )
    # No limit given: a run that would cost more than a usual book must be confirmed.
    raise ConfigError(
        f"the estimate is {format_cost(result.cost)} for {result.chunks} requests and "
        f"{result.billing_characters:,} billing characters, over "
        f"{format_cost(limit)} (--confirm-above); nothing was sent. "
        "Check the inputs with `narrator estimate`, then pass --yes or --max-cost USD"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from ..tools.emulator import EmulatorConfig, start_emulator

    # -o is "the folder for the audiobooks" here, whether it exists yet or not: one file
    # goes into it as a WAV (an audio file's name still names the book itself).
    if Path(args.output).suffix.lower().lstrip(".") not in FORMATS:
        args.output = args.output.rstrip("/" + os.sep) + os.sep
    works, unread, _ = load_works(args)
    if not works:
        raise ConfigError(_nothing_left(unread))
    # Each sample also as a read-along book (docs/read-along.md): the same segments, so
    # nothing more is sent for it.
    works += [
        Work(w.document, w.output.with_suffix(".epub"))
        for w in works
        if not is_read_along(w.output)
    ]

    with tempfile.TemporaryDirectory(prefix="narrator-demo-") as cache:

        async def main() -> tuple[RunReport, int]:
            emulator = await start_emulator(EmulatorConfig(api_key="demo-key"))
            try:
                print(
                    f"narrator demo: the AIML API emulator is listening on {emulator.url}",
                    file=sys.stderr,
                )
                settings = Settings(
                    api_key="demo-key",
                    base_url=emulator.url,
                    voice=args.voice,
                    rpm=600,
                    concurrency=4,
                    cache_dir=Path(cache),
                )
                return await _narrate(works, settings, quiet=args.quiet)
            finally:
                await emulator.close()

        run, interrupted = asyncio.run(main())
    print_summary(run)
    if run.ok and not interrupted:
        folder = Path(args.output) if args.output.endswith(os.sep) else Path(args.output).parent
        print(shown(f"Audiobooks are in {folder.resolve()}/"))
    return interrupted or (0 if run.ok else 1)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..tools.emulator import EmulatorConfig, serve

    config = EmulatorConfig(
        api=args.api,
        api_key=args.api_key,
        rpm=args.rpm,
        max_concurrency=args.max_concurrency,
        latency=args.latency,
        latency_per_char=args.latency_per_char,
        fail_rate=args.fail_rate,
        shape=args.shape,
        engine=args.engine,
        url_ttl=args.url_ttl,
        drop_rate=args.drop_rate,
        truncate_rate=args.truncate_rate,
        credits=args.credits,
        retry_after=args.retry_after,
        seed=args.seed,
        bad_audio_rate=args.bad_audio_rate,
        bad_audio_kinds=tuple(args.bad_audio_kinds.split(",")),
    )

    def ready(base_url: str, path: str) -> None:
        # The base URL first, as `demo` prints it: that is what --base-url takes.
        print(
            f"narrator serve: listening on {base_url} (pass it as --base-url; "
            f"the endpoint is POST {path})",
            flush=True,
        )

    serve(config, host=args.host, port=args.port, ready=ready)
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    from ..synth.providers import provider_voices

    names = tuple(REGISTRY) if args.provider == "all" else (args.provider,)
    for name in names:
        print(f"[{name}] default voice {REGISTRY[name].voice}; {describe_pace(name)}")
        for voice in provider_voices(name):
            print(f"{voice.name:<10} {voice.description}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ..store import Store, store_exists

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if not store_exists(root):
        print(f"{root}: empty")
        return 0
    store = Store(root)
    try:
        if args.action == "clear":
            store.clear()
            print(f"{root}: cleared")
        elif args.action == "prune":
            if args.older_than is None and args.max_size is None:
                raise ConfigError("cache prune: say what to keep, with --older-than or --max-size")
            pruned = store.prune(max_bytes=args.max_size, older_than=args.older_than)
            kept = f"; {pruned.kept_live} kept for a run in progress" if pruned.kept_live else ""
            if pruned.ignored:
                kept += f"; {pruned.ignored} rows naming files outside the cache ignored"
            print(
                f"{root}: {plural(pruned.removed, 'segment')} removed, "
                f"{pruned.freed / 1e6:.1f} MB freed, "
                f"{pruned.remaining / 1e6:.1f} MB left{kept}"
            )
        else:
            info = store.info()
            states = ", ".join(f"{n} {s}" for s, n in sorted(info.states.items())) or "no segments"
            print(
                f"{root}: {plural(info.files, 'audio file')}, {info.bytes / 1e6:.1f} MB; {states}"
            )
            for doc in store.usage():
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(doc.last_used))
                size = f"{doc.bytes / 1e6:9.1f} MB  {doc.segments:6} segments"
                print(f"  {size}  last used {used}  {shown(doc.document)}")
    finally:
        store.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..run.check import check_documents, prepare_fix
    from ..store import open_store, store_exists

    env = dict(os.environ)
    if not args.fix:
        # Nothing is sent: a placeholder key satisfies the settings (it goes nowhere).
        variable = REGISTRY[args.provider].key_variable
        if variable and not (args.api_key or env.get(variable)):
            env[variable] = "check-only"
    settings = make_settings(args, env)
    works, _, order = load_works(args, settings.base_url)
    if not works:
        raise ConfigError("nothing to check: every input was empty or unreadable")
    store_dir = settings.store_dir
    if settings.store_url is None and not store_exists(store_dir):
        raise ConfigError(f"no segment store in {store_dir}: narrate first (or pass --cache-dir)")
    store = open_store(  # refused before anything else is made
        store_dir,
        url=settings.store_url,
        objects_url=settings.objects_url,
        max_segment_bytes=settings.max_segment_bytes,
    )
    provider = make_provider(settings)
    try:
        reports = check_documents(works, settings, provider, store)
        if args.fix:
            _fix_within_limit(args, settings, reports)  # before anything is marked
        marked = prepare_fix(reports, store) if args.fix else 0
    finally:
        store.close()
        asyncio.run(provider.aclose())
    for report in reports:
        missing = f", {report.missing} not in the store" if report.missing else ""
        if report.corrupt:
            missing += f", {len(report.corrupt)} corrupt (--fix makes them again)"
        print(
            f"{shown(report.input)}: {plural(report.checked, 'segment')} checked, "
            f"{len(report.flagged)} flagged{missing}"
        )
        for flag in report.flagged:
            print(f"  {shown(flag_line(flag))}")
    if not args.fix:
        flagged = sum(len(r.flagged) for r in reports)
        return 1 if flagged or any(r.missing for r in reports) else 0
    fixing = [w for w, r in zip(works, reports, strict=True) if r.flagged or r.corrupt]
    if not fixing:
        print("nothing to fix")
        return 0
    print(
        f"synthesizing {marked} flagged segments again (billed) and rebuilding {len(fixing)} books"
    )
    # The budget covers what was asked for: every flagged segment, with all its retries.
    total = sum(r.chunks for r in reports if r.flagged)
    needed = 100.0 * marked * (1 + settings.qa_retries) / max(1, total)
    settings = dataclasses.replace(settings, force=True, qa_budget=max(settings.qa_budget, needed))
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    return _run_narrate(
        fixing,
        settings,
        quiet=args.quiet,
        report=args.report,
        inputs=order,
        argv=getattr(args, "argv", ()),
    )


def _fix_within_limit(
    args: argparse.Namespace, settings: Settings, reports: Sequence[CheckReport]
) -> None:
    """Refuse ``check --fix`` whose most possible cost is over --max-cost, or over
    --confirm-above without --yes: every flagged, corrupt or missing segment of a book to
    fix, sent 1 + --qa-retries times, each request at the longest chunk."""
    price = assumed_price(args, settings.provider)
    chosen = spending_limit(args, price)
    if chosen is None:
        return
    limit, name = chosen
    segments = sum(
        len(r.flagged) + len(r.corrupt) + r.missing for r in reports if r.flagged or r.corrupt
    )
    requests = segments * (1 + settings.qa_retries)
    most = requests * settings.max_chars * price / 10_000
    if most > limit:
        raise ConfigError(
            f"fixing could cost up to {format_cost(most)} ({plural(requests, 'request')} at "
            f"most), over {name} {format_cost(limit)}; nothing was sent or marked. "
            "Pass --yes or a higher --max-cost"
        )


def cmd_report(args: argparse.Namespace) -> int:
    run, context = read_report(Path(args.run))
    out = Path(args.output)
    check_writable(out.parent if str(out.parent) else Path("."), what="-o")
    out.write_text(render_html(run, context, folder=out.parent), encoding="utf-8")
    print(shown(f"{out}: {plural(len(run.documents), 'document')}"))
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from ..book.feed import write_feed

    result = write_feed(Path(args.folder), base_url=args.base_url, title=args.title)
    print(shown(f"{result.path}: {plural(len(result.items), 'episode')}"))
    return 0
