"""The ``narrator`` command: a thin shell over the library.

It is the only place that reads the environment, prints, and turns errors into exit
codes: 0 all done, 1 some document failed (or the account ran out of credits),
2 usage or configuration error, 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import __version__
from ..book.audiobook import AudiobookOptions
from ..book.encode import FORMATS
from ..chunks.split import billing_chars
from ..errors import (
    AuthError,
    ConfigError,
    EndpointNotFound,
    InputError,
    NarratorError,
    SettingsRejected,
    Unreachable,
)
from ..estimate import DEFAULT_LATENCY, DEFAULT_PRICE_PER_10K_CHARS, Estimate, estimate, format_cost
from ..inputs.documents import Document
from ..inputs.limits import DEFAULT_MAX_TEXT_BYTES
from ..inputs.sources import STDIN, Input, find_inputs, read_inputs, safe_filename
from ..pipeline import DocumentReport, Flag, ProgressEvent, RunReport, Work, narrate_many
from ..preflight import check_lang
from ..settings import (
    DEFAULT_BASE_URLS,
    KEY_VARIABLES,
    PROVIDER_DEFAULTS,
    PROVIDERS,
    Settings,
    describe_pace,
)
from ..synth.providers import make_provider
from ..util.atomic import atomic_write
from ..util.folders import check_writable, output_folder
from ..util.netpolicy import NetPolicy
from .argtypes import (
    HelpFormatter,
    Parser,
    as_int,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    share,
)
from .config import apply_config, endpoint_setting, find_config, load_config, option_names

log = logging.getLogger("narrator")
# Without --max-cost, a run estimated above this many dollars needs --yes: more than a
# long novel costs at the default price, so only a surprise (a document bomb) trips it.
DEFAULT_CONFIRM_ABOVE = 10.0


def default_cache_dir(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/narrator``, else ``~/.cache/narrator``."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "narrator"


# --- inputs and outputs -----------------------------------------------------------------


def _check_outputs(items: list[Input], many: bool, out: str | None, fmt: str | None = None) -> None:
    """Refuse a wrong -o before anything is read or fetched."""
    if not many:
        if out is None and items[0].location == STDIN:
            raise ConfigError("reading standard input needs -o FILE.wav")
        if out is not None:
            target = Path(out)
            folder = target.is_dir() or out.endswith(("/", os.sep))
            if not folder and fmt is None and target.suffix.lower().lstrip(".") not in FORMATS:
                raise ConfigError(
                    f"-o {out}: name the output with one of the extensions "
                    f"{', '.join('.' + f for f in FORMATS)}, or a folder, or pass --format"
                )
        return
    if out is None:
        raise ConfigError("several inputs or a folder need -o DIR for the audiobooks")
    if Path(out).suffix.lower().lstrip(".") in FORMATS:
        raise ConfigError(f"-o {out}: several inputs need a folder, not an audio file")


def _plan_outputs(
    loaded: list[tuple[Input, Document]], many: bool, out: str | None, fmt: str | None = None
) -> list[Path]:
    """Where each audiobook goes: beside its input, at -o, or mirrored under -o DIR.

    A URL's audiobook is named after the page title, made safe for any filesystem.
    """
    relatives = [item.relative or Path(safe_filename(doc.title)) for item, doc in loaded]
    ext = f".{fmt or 'wav'}"  # a folder gets WAV audiobooks unless --format says otherwise
    if not many:
        ((item, _),) = loaded
        (relative,) = relatives
        if out is None:
            if item.is_url:
                return [Path(f"{relative}{ext}")]
            return [Path(item.location).with_suffix(ext)]
        target = Path(out)
        if target.is_dir() or out.endswith(("/", os.sep)):
            return [target / f"{relative.name}{ext}"]
        return [target]
    assert out is not None  # _check_outputs refused it
    root = Path(out)
    outputs: list[Path] = []
    taken: set[Path] = set()
    for relative in relatives:
        candidate = root / f"{relative}{ext}"
        n = 2
        while candidate in taken:  # two inputs with one name: keep both
            candidate = root / f"{relative}-{n}{ext}"
            n += 1
        taken.add(candidate)
        outputs.append(candidate)
    return outputs


def _unread(item: Input, status: str, error: str) -> DocumentReport:
    """The report of an input that never became a document."""
    return DocumentReport(
        input=item.location, output="", title="", status=status, chunks=0,
        billing_characters=0, audio_seconds=0.0, requests=0, retries=0, cached_chunks=0,
        errors=(error,),
    )  # fmt: skip


def _network(args: argparse.Namespace, endpoint: str | None = None) -> NetPolicy:
    """What URL inputs and audio links may reach besides public addresses."""
    return NetPolicy.make(
        endpoint=endpoint,
        hosts=getattr(args, "allow_host", None) or (),
        allow_private=getattr(args, "allow_private_network", False),
    )


def _load(
    args: argparse.Namespace, *, outputs: bool = True, endpoint: str | None = None
) -> tuple[list[tuple[Input, Document]], list[DocumentReport], bool, list[str]]:
    """Find and read every input: the documents, reports of those that failed, whether
    there are several, and every input in order. ``outputs``: check -o first (not for
    an estimate). URL inputs may be on ``endpoint``'s host, like its audio links."""
    inputs = args.inputs
    include, exclude = getattr(args, "include", None), getattr(args, "exclude", None)
    items, many = find_inputs(
        inputs,
        include=include or (),
        exclude=exclude or (),
        follow_symlinks=getattr(args, "follow_symlinks", False),
    )
    if not items:
        raise ConfigError("no documents found in " + ", ".join(inputs))
    if outputs:
        _check_outputs(items, many, args.output, getattr(args, "format", None))
    stdin = sys.stdin.buffer.read() if any(i.location == STDIN for i in items) else None
    results = asyncio.run(
        read_inputs(
            items,
            stdin=stdin,
            timeout=getattr(args, "fetch_timeout", 30.0),
            max_bytes=int(getattr(args, "max_page_mb", 20.0) * 1_000_000),
            max_text_bytes=int(getattr(args, "max_text_mb", 20.0) * 1_000_000),
            policy=_network(args, endpoint),
        )
    )
    loaded: list[tuple[Input, Document]] = []
    unread: list[DocumentReport] = []
    for item, result in zip(items, results, strict=True):
        if isinstance(result, InputError):
            # A page that cannot be had is a failure; a local file that is not a readable
            # document (a binary file in a folder, say) is only left out.
            # Reported once, by the summary (or the estimate), which names the input itself.
            status = "failed" if item.is_url else "skipped"
            message = str(result).removeprefix(f"{item.location}: ")
            unread.append(_unread(item, status, message))
        elif result.is_empty:
            unread.append(_unread(item, "skipped", "empty: nothing to narrate"))
        else:
            loaded.append((item, result))
    return loaded, unread, many, [item.location for item in items]


def _works(
    args: argparse.Namespace, endpoint: str | None = None
) -> tuple[list[Work], list[DocumentReport], list[str]]:
    """The documents to narrate with their outputs, reports of inputs left out, and
    every input's name in order."""
    loaded, unread, many, order = _load(args, endpoint=endpoint)
    fmt = getattr(args, "format", None)
    outputs = _plan_outputs(loaded, many, args.output, fmt) if loaded else []
    works = [Work(doc, out) for (_, doc), out in zip(loaded, outputs, strict=True)]
    return works, unread, order


# --- running ----------------------------------------------------------------------------


class _Bar:
    """Turns progress events into a tqdm bar on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.bar: tqdm[None] | None = None
        self.quiet = quiet
        self.characters = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "planned":
            self.bar = tqdm(
                total=event.chunks,
                unit="chunk",
                desc="narrating",
                disable=True if self.quiet else None,
                dynamic_ncols=True,
            )
            self.total_chars = event.characters
        elif event.kind == "chunk" and self.bar is not None:
            self.characters += event.characters
            self.bar.set_postfix_str(
                f"{self.characters:,}/{self.total_chars:,} chars", refresh=False
            )
            self.bar.update(event.chunks)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _shorten(text: str, width: int = 60) -> str:
    # The end of a path or URL tells documents apart; the start is often shared.
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _table(rows: Sequence[Sequence[str]], right: Sequence[int]) -> list[str]:
    """Rows as aligned text; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _summary(run: RunReport) -> None:
    """The table of documents on stdout; failures and the totals on stderr."""
    rows = [("document", "status", "chunks", "characters", "audio", "flagged", "output")]
    for doc in run.documents:
        audio = _format_seconds(doc.audio_seconds) if doc.output and doc.ok else "-"
        if doc.status == "skipped":
            where = doc.errors[0] if doc.errors else ""  # why: reported once, here
        elif doc.ok:
            where = doc.files[0] if len(doc.files) > 1 else doc.output
        else:
            where = ""
        rows.append(
            (
                _shorten(doc.input),
                doc.status,
                str(doc.chunks),
                f"{doc.billing_characters:,}",
                audio,
                str(len(doc.flagged)),
                where,
            )
        )
        if doc.ok and len(doc.files) > 1:  # a split book: each part on its own line
            rows += [("", "", "", "", "", "", part) for part in doc.files[1:]]
    if len(run.documents) > 1:  # the sums of the rows above, as in the JSON's totals
        totals = _totals(run)
        rows.append(
            (
                f"total ({len(run.documents)} documents)",
                "",
                str(totals["chunks"]),
                f"{totals['billing_characters']:,}",
                _format_seconds(totals["audio_seconds"]),
                str(totals["flagged"]),
                "",
            )
        )
    if run.documents:
        print("\n".join(_table(rows, right=(2, 3, 4, 5))))
    for doc in run.documents:
        for flag in doc.flagged:
            print(f"FLAGGED: {doc.input}: {_flag_line(flag)}", file=sys.stderr)
    for doc in run.documents:
        # Documents stopped with the run are in the table; the run's one line says why.
        if doc.status == "failed" or (doc.status == "stopped" and run.stopped is None):
            first = doc.errors[0] if doc.errors else ""
            print(f"{doc.status.upper()}: {doc.input}: {first}", file=sys.stderr)
    totals = _totals(run)
    current = f", {totals['up_to_date']} up to date" if totals["up_to_date"] else ""
    redone = f", {run.qa_resynthesized} redone for bad audio" if run.qa_resynthesized else ""
    print(
        f"{totals['done']} of {len(run.documents)} audiobooks written{current}; "
        f"{run.requests} requests, {run.retries} retries{redone}, {run.seconds:.1f} s",
        file=sys.stderr,
    )


def _flag_line(flag: Flag) -> str:
    """One flagged segment: where to listen, what is wrong, and its text."""
    at = f"at {_format_seconds(flag.start)}, " if flag.start is not None else ""
    text = " ".join(flag.text.split())
    text = text if len(text) <= 50 else text[:49] + "…"
    return (
        f"chunk {flag.chunk} ({at}{flag.attempts} attempts): {flag.kind}: {flag.reason}: {text!r}"
    )


def _totals(run: RunReport) -> dict[str, int | float]:
    docs = run.documents
    return {
        "documents": len(docs),
        "done": sum(d.status == "done" for d in docs),
        "up_to_date": sum(d.status == "up-to-date" for d in docs),
        "failed": sum(d.status == "failed" for d in docs),
        "skipped": sum(d.status == "skipped" for d in docs),
        "stopped": sum(d.status == "stopped" for d in docs),
        "chunks": sum(d.chunks for d in docs),
        "billing_characters": sum(d.billing_characters for d in docs),
        "audio_seconds": round(sum(d.audio_seconds for d in docs), 3),
        "requests": run.requests,
        "retries": run.retries,
        "errors": sum(len(d.errors) for d in docs if not d.ok),
        "flagged": sum(len(d.flagged) for d in docs),
    }


def _write_report(path: Path, run: RunReport, settings: Settings | None = None) -> None:
    """The run as JSON. Each document's ``chunks`` and ``billing_characters`` count every
    chunk it is made of; its ``requests`` and ``retries`` count a chunk that several
    documents share once, in the first that asked for it, so they add up to the run's."""
    pace = {}
    if settings is not None:  # what the run was allowed: null rpm means no limit
        rpm = None if math.isinf(settings.rpm) else settings.rpm
        pace = {"provider": settings.provider, "rpm": rpm, "concurrency": settings.concurrency}
    data = {
        **pace,
        "documents": [dataclasses.asdict(d) for d in run.documents],
        "requests": run.requests,
        "retries": run.retries,
        "throttled": run.throttled,
        "resynthesized": run.resynthesized,
        "qa_resynthesized": run.qa_resynthesized,
        "qa_budget_spent": run.qa_budget_spent,
        "seconds": run.seconds,
        "stopped": run.stopped,
        "ok": run.ok,
        "errors": [f"{d.input}: {e}" for d in run.documents if not d.ok for e in d.errors],
        "totals": _totals(run),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


async def _narrate(works: list[Work], settings: Settings, *, quiet: bool) -> tuple[RunReport, int]:
    stop = asyncio.Event()
    caught: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if caught:  # a second Ctrl-C: stop waiting for requests in flight
            raise KeyboardInterrupt
        caught.append(signum)
        log.warning("stopping: no new requests; waiting a few seconds for those in flight")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    bar = _Bar(quiet)
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
) -> int:
    if works:
        run, interrupted = asyncio.run(_narrate(works, settings, quiet=quiet))
    else:  # every input failed to read: nothing to send, but still a table and a report
        run, interrupted = RunReport((), 0, 0, 0, 0, 0.0), 0
    if unread:
        # Inputs that never became documents take their place in the table, in input order.
        order = {name: n for n, name in enumerate(inputs)}
        merged = sorted([*unread, *run.documents], key=lambda d: order.get(d.input, 0))
        run = dataclasses.replace(run, documents=tuple(merged))
    if report:
        _write_report(Path(report), run, settings)
    _summary(run)
    if interrupted:
        print(
            "narrator: interrupted; finished chunks are saved, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return interrupted
    if run.stop_error is not None:
        if isinstance(run.stop_error, (AuthError, EndpointNotFound, Unreachable, SettingsRejected)):
            print(f"narrator: {run.stop_error}", file=sys.stderr)
            return 2
        print(
            f"narrator: {run.stop_error}; everything finished so far is kept, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 1
    return 0 if run.ok else 1


def _endpoint_origin(args: argparse.Namespace, env: dict[str, str] | os._Environ[str]) -> str:
    """Where the base URL came from, in words; refuses one from a settings file that was
    found in the current folder, not named by the user, unless confirmed."""
    source = getattr(args, "endpoint_source", None)
    if source is None:
        return "--base-url" if args.base_url else "$NARRATOR_BASE_URL"
    path, key, named = source
    if named:
        return f"--config {path}"
    if getattr(args, "trust_settings", False):
        return f"{path}, trusted with --trust-settings"
    variable = KEY_VARIABLES.get(args.provider)
    if args.provider != "espeak" and (args.api_key or (variable and env.get(variable))):
        raise ConfigError(
            f"{path}: {key} = {_printable(str(args.base_url))!r} would receive your API key, "
            "and that settings file was found in the current folder, not named by you; "
            f"confirm with --base-url {_printable(str(args.base_url))} (or --trust-settings), "
            "or remove the setting"
        )
    return str(path)


def _printable(text: str, limit: int = 200) -> str:
    from ..util.sanitize import clean_line

    return clean_line(text, limit=limit)


def announce_endpoint(settings: Settings, origin: str) -> None:
    """Say once where the key goes when it is not the provider's own service."""
    if settings.provider == "espeak" or not settings.api_key:
        return
    where = "dashscope/cn" if settings.provider == "dashscope" and settings.region == "cn" else ""
    if settings.base_url.rstrip("/") == DEFAULT_BASE_URLS[where or settings.provider]:
        return
    log.warning("sending the API key to %s (from %s)", settings.base_url, origin)


def _settings(args: argparse.Namespace, env: dict[str, str] | os._Environ[str]) -> Settings:
    variable = KEY_VARIABLES.get(args.provider)
    api_key = args.api_key or (env.get(variable) if variable else None) or None
    # Empty base URL, model and voice: the provider's own defaults (see settings.py).
    base_url = args.base_url or env.get("NARRATOR_BASE_URL") or ""
    if base_url:
        args.endpoint_origin = _endpoint_origin(args, env)
    return Settings(
        provider=args.provider,
        api_key=api_key,
        base_url=base_url,
        model=args.model or "",
        region=args.region,
        voice=args.voice or "",
        concurrency=args.concurrency or 0,  # 0: the provider's default
        rpm=args.rpm or 0.0,
        max_chars=args.max_chars,
        lang=args.lang,
        gap_ms=args.gap_ms,
        chapter_gap_ms=args.chapter_gap_ms,
        paragraph_gap_ms=args.paragraph_gap_ms,
        audiobook=AudiobookOptions(
            format=args.format,
            title=args.title,
            author=args.author,
            album=args.album,
            year=args.year,
            cover=Path(args.cover) if args.cover else None,
            normalize=args.normalize,
            split_hours=args.split_hours,
            subtitles=args.subtitles,
            clean_joins=args.clean_joins,
        ),
        retries=args.retries,
        stall_timeout=args.stall_timeout,
        backoff_base=args.backoff,
        force=args.force,
        allow_hosts=tuple(args.allow_host or ()),
        allow_private_network=args.allow_private_network,
        qa=args.qa,
        qa_retries=args.qa_retries,
        qa_budget=args.qa_budget,
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(env),
    )


def _counting(provider_name: str, max_chars: int) -> tuple[int, Callable[[str], int]]:
    """The chunk limit and character count a run with this provider would split with."""
    try:
        # The key is never used: nothing is sent, and the provider opens no connection
        # until its first request.
        provider = make_provider(Settings(provider=provider_name, api_key="estimate-only"))
    except NarratorError:
        return max_chars, billing_chars
    return min(max_chars, provider.max_chars), provider.billing_chars


def _estimate(args: argparse.Namespace, documents: Sequence[Document]) -> Estimate:
    provider = getattr(args, "provider", None) or "aimlapi"
    max_chars, count = _counting(provider, args.max_chars)
    defaults = PROVIDER_DEFAULTS[provider]
    return estimate(
        documents,
        max_chars=max_chars,
        count=count,
        lang=args.lang,
        rpm=args.rpm or defaults.rpm,
        concurrency=args.concurrency or defaults.concurrency,
        # The offline voice runs on this machine: nothing to pay, whatever the flag says.
        price_per_10k_chars=0.0 if provider == "espeak" else args.price_per_10k_chars,
        latency=args.assume_latency,
    )


def _cost(result: Estimate, usd: float) -> str:
    return "free" if result.price_per_10k_chars == 0 else format_cost(usd)


def _print_estimate(result: Estimate) -> None:
    rows = [("document", "lang", "chunks", "characters", "cost", "time")]
    for doc in result.documents:
        rows.append(
            (
                _shorten(doc.input),
                doc.lang,
                str(doc.chunks),
                f"{doc.billing_characters:,}",
                _cost(result, doc.cost),
                _format_seconds(doc.seconds),
            )
        )
    rows.append(
        (
            f"total ({len(result.documents)} documents)",
            "",
            str(result.chunks),
            f"{result.billing_characters:,}",
            _cost(result, result.cost),
            _format_seconds(result.seconds),
        )
    )
    print("\n".join(_table(rows, right=(2, 3, 4, 5))))
    price = (
        "nothing to pay (the voice runs offline)"
        if result.price_per_10k_chars == 0
        else f"{format_cost(result.price_per_10k_chars)} per 10,000 billing characters "
        "(--price-per-10k-chars)"
    )
    rate = "no rate limit" if math.isinf(result.rpm) else f"--rpm {result.rpm:g}"
    print(
        f"{result.chunks} requests, no retries counted. Assumes {price} and "
        f"{result.latency:g} s per request (--assume-latency), at {rate} and "
        f"--concurrency {result.concurrency}; chunks already in the cache are counted too."
    )


def cmd_estimate(args: argparse.Namespace) -> int:
    check_lang(args.lang)
    loaded, unread, _, _ = _load(args, outputs=False)
    for report in unread:
        print(f"{report.status.upper()}: {report.input}: {report.errors[0]}", file=sys.stderr)
    _print_estimate(_estimate(args, [doc for _, doc in loaded]))
    return 1 if any(r.status == "failed" for r in unread) else 0


def _nothing_left(unread: Sequence[DocumentReport]) -> str:
    """One line: nothing is left to narrate, and why (the first few inputs' reasons)."""
    why = "; ".join(f"{r.input}: {r.errors[0]}" for r in unread[:3] if r.errors)
    more = f"; and {len(unread) - 3} more" if len(unread) > 3 else ""
    return f"nothing to narrate: every input was empty or unreadable ({why}{more})"


def cmd_narrate(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_estimate(args)
    settings = _settings(args, os.environ)
    # Before anything is fetched, sent or paid for: every folder the run writes to.
    check_writable(settings.store_dir, what="--cache-dir")
    if args.report:
        check_writable(Path(args.report).parent, what="--report")
    if args.output:
        check_writable(output_folder(args.output), what="-o")
    works, unread, order = _works(args, settings.base_url)
    for folder in sorted({work.output.parent for work in works}):
        check_writable(folder, what="the audiobook's folder")
    if not works and not any(report.status == "failed" for report in unread):
        raise ConfigError(_nothing_left(unread))
    if args.max_cost is not None:
        result = _estimate(args, [work.document for work in works])
        if result.cost > args.max_cost:
            raise ConfigError(
                f"the estimate is {format_cost(result.cost)} for {result.chunks} requests and "
                f"{result.billing_characters:,} billing characters (at "
                f"{format_cost(result.price_per_10k_chars)} per 10,000), over --max-cost "
                f"{format_cost(args.max_cost)}; nothing was sent"
            )
    elif not args.yes and settings.provider != "espeak":
        # No limit given: a run that would cost more than a usual book must be confirmed.
        result = _estimate(args, [work.document for work in works])
        if result.cost > args.confirm_above:
            raise ConfigError(
                f"the estimate is {format_cost(result.cost)} for {result.chunks} requests and "
                f"{result.billing_characters:,} billing characters, over "
                f"{format_cost(args.confirm_above)} (--confirm-above); nothing was sent. "
                "Check the inputs with `narrator estimate`, then pass --yes or --max-cost USD"
            )
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    return _run_narrate(
        works, settings, quiet=args.quiet, report=args.report, unread=unread, inputs=order
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from ..tools.emulator import EmulatorConfig, start_emulator

    works, unread, _ = _works(args)
    if not works:
        raise ConfigError(_nothing_left(unread))

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
    _summary(run)
    if run.ok and not interrupted:
        print(f"Audiobooks are in {Path(args.output).resolve()}/")
    return interrupted or (0 if run.ok else 1)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..tools.emulator import DASHSCOPE_PATH, EmulatorConfig, start_emulator

    config = EmulatorConfig(
        api=args.api,
        api_key=args.api_key,
        rpm=args.rpm,
        max_concurrency=args.max_concurrency,
        latency=args.latency,
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

    async def main() -> None:
        emulator = await start_emulator(config, host=args.host, port=args.port)
        path = {"aimlapi": "/v1/tts", "dashscope": DASHSCOPE_PATH, "openai": "/v1/audio/speech"}
        print(f"narrator serve: listening on {emulator.url}{path[args.api]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    from ..synth.providers import provider_voices

    names = PROVIDERS if args.provider == "all" else (args.provider,)
    for name in names:
        default = PROVIDER_DEFAULTS[name]
        print(f"[{name}] default voice {default.voice}; {describe_pace(name)}")
        for voice in provider_voices(name):
            print(f"{voice.name:<10} {voice.description}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ..synth.store import Store

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if not (root / "narrator.sqlite3").exists():
        print(f"{root}: empty")
        return 0
    store = Store(root)
    try:
        if args.action == "clear":
            store.clear()
            print(f"{root}: cleared")
        else:
            info = store.info()
            states = ", ".join(f"{n} {s}" for s, n in sorted(info.states.items())) or "no segments"
            print(f"{root}: {info.files} audio files, {info.bytes / 1e6:.1f} MB; {states}")
    finally:
        store.close()
    return 0


# --- parsing ----------------------------------------------------------------------------


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="text, Markdown, HTML or EPUB files, folders, http(s) URLs, or - for stdin",
    )
    p.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="in folders, take only files matching GLOB (repeatable; default: *.txt *.md "
        "*.markdown *.html *.htm *.epub)",
    )
    p.add_argument(
        "--exclude", action="append", metavar="GLOB", help="in folders, skip files matching GLOB"
    )
    p.add_argument(
        "--lang",
        default="auto",
        help="language for sentence splitting: auto (detected per document) or en, zh, ja, ...",
    )
    p.add_argument(
        "--fetch-timeout", type=positive_float, default=30.0, help="seconds to fetch one URL"
    )
    p.add_argument(
        "--max-page-mb", type=positive_float, default=20.0, help="largest page or file to fetch"
    )
    p.add_argument(
        "--max-text-mb",
        type=positive_float,
        default=DEFAULT_MAX_TEXT_BYTES / 1e6,
        help="most text one document may hold, and an EPUB inflate to (default: %(default)g)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        help="fetch URL inputs and audio links from HOST though it is loopback or private "
        "(repeatable; the endpoint's own host always is)",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="in folders, read links that lead outside the folder (default: skipped)",
    )
    p.add_argument(
        "--allow-private-network",
        action="store_true",
        help="fetch from any loopback, link-local or private address",
    )
    p.add_argument(
        "--config", metavar="FILE", help="settings file (default: ./narrator.toml if present)"
    )


def _add_estimate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--price-per-10k-chars",
        type=non_negative_float,
        default=DEFAULT_PRICE_PER_10K_CHARS,
        metavar="USD",
        help=f"assumed price of 10,000 billing characters (default: {DEFAULT_PRICE_PER_10K_CHARS})",
    )
    p.add_argument(
        "--assume-latency",
        type=positive_float,
        default=DEFAULT_LATENCY,
        metavar="S",
        help=f"assumed seconds per request, for the time estimate (default: {DEFAULT_LATENCY:g})",
    )


def _add_audiobook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format", choices=list(FORMATS), help="audio format (default: from -o, else wav)"
    )
    p.add_argument("--title", help="title tag (default: the document's title)")
    p.add_argument("--author", help="author (artist) tag")
    p.add_argument("--album", help="album tag")
    p.add_argument("--year", help="year tag")
    p.add_argument("--cover", metavar="IMAGE", help="cover art, a JPEG or PNG file")
    p.add_argument(
        "--normalize",
        action="store_true",
        help="even loudness over the whole book: EBU R128, -18 LUFS, -1.5 dBTP (two passes)",
    )
    p.add_argument(
        "--split-hours",
        type=positive_float,
        metavar="N",
        help="split into parts of at most N hours (NAME-01.EXT, ...), cut between chunks",
    )
    p.add_argument(
        "--subtitles", choices=["srt", "vtt"], help="write a subtitle file beside the audiobook"
    )
    p.add_argument(
        "--clean-joins",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trim each segment's silence and fade every cut (default: on, off for WAV)",
    )


def _add_qa_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--qa",
        default="on",
        choices=["on", "strict", "off"],
        help="the audio quality gate: on (redo bad segments, keep and flag the best if "
        "none passes), strict (a document with a flagged segment fails), off (default: on)",
    )
    p.add_argument(
        "--qa-retries",
        type=non_negative_int,
        default=2,
        metavar="N",
        help="times a bad segment is synthesized again, each billed (default: 2)",
    )
    p.add_argument(
        "--qa-budget",
        type=non_negative_float,
        default=5.0,
        metavar="PCT",
        help="re-syntheses for bad audio in a run, in %% of its chunks (default: 5)",
    )


def cmd_check(args: argparse.Namespace) -> int:
    from ..check import check_documents, prepare_fix
    from ..synth.store import Store

    env = dict(os.environ)
    if not args.fix:
        # Nothing is sent: a placeholder key satisfies the settings (it goes nowhere).
        variable = KEY_VARIABLES.get(args.provider)
        if variable and not (args.api_key or env.get(variable)):
            env[variable] = "check-only"
    settings = _settings(args, env)
    works, _, order = _works(args, settings.base_url)
    if not works:
        raise ConfigError("nothing to check: every input was empty or unreadable")
    store_dir = settings.store_dir
    if not (store_dir / "narrator.sqlite3").exists():
        raise ConfigError(f"no segment store in {store_dir}: narrate first (or pass --cache-dir)")
    provider = make_provider(settings)
    store = Store(store_dir)
    try:
        reports = check_documents(works, settings, provider, store)
        marked = prepare_fix(reports, store) if args.fix else 0
    finally:
        store.close()
        asyncio.run(provider.aclose())
    for report in reports:
        missing = f", {report.missing} not in the store" if report.missing else ""
        print(
            f"{report.input}: {report.checked} segments checked, "
            f"{len(report.flagged)} flagged{missing}"
        )
        for flag in report.flagged:
            print(f"  {_flag_line(flag)}")
    if not args.fix:
        flagged = sum(len(r.flagged) for r in reports)
        return 1 if flagged or any(r.missing for r in reports) else 0
    fixing = [w for w, r in zip(works, reports, strict=True) if r.flagged]
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
    return _run_narrate(fixing, settings, quiet=args.quiet, report=args.report, inputs=order)


def cmd_feed(args: argparse.Namespace) -> int:
    from ..book.feed import write_feed

    result = write_feed(Path(args.folder), base_url=args.base_url, title=args.title)
    print(f"{result.path}: {len(result.items)} episodes")
    return 0


_PACE_HELP = "; ".join(f"{name}: {describe_pace(name)}" for name in PROVIDERS)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="narrator",
        description="Turn long text into audiobooks through text-to-speech services.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"narrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("narrate", help="narrate texts into audiobooks (MP3, M4B, WAV, ...)")
    _add_input_options(p)
    _add_estimate_options(p)
    p.add_argument(
        "-o",
        "--output",
        help="FILE.mp3|.m4b|.m4a|.flac|.ogg|.opus|.wav for one input, a folder for several",
    )
    p.add_argument("--force", action="store_true", help="redo audiobooks that are up to date")
    p.add_argument(
        "--dry-run", action="store_true", help="only estimate requests, cost and time; send nothing"
    )
    p.add_argument(
        "--max-cost",
        type=non_negative_float,
        metavar="USD",
        help="refuse to start when the estimated cost is higher",
    )
    p.add_argument(
        "--confirm-above",
        type=non_negative_float,
        default=DEFAULT_CONFIRM_ABOVE,
        metavar="USD",
        help="without --max-cost, refuse to start when the estimate is higher, unless --yes "
        f"(default: {DEFAULT_CONFIRM_ABOVE:g})",
    )
    p.add_argument(
        "--yes", action="store_true", help="start even when the estimate is over --confirm-above"
    )
    p.add_argument(
        "--trust-settings",
        action="store_true",
        help="send the API key to the base_url of ./narrator.toml (found, not named with --config)",
    )
    p.add_argument(
        "--voice", help="voice name (default: Cherry; alloy for openai; see `narrator voices`)"
    )
    p.add_argument("--provider", default="aimlapi", choices=PROVIDERS, help="the TTS service")
    p.add_argument(
        "--api-key",
        help="API key (default: $AIMLAPI_KEY, $DASHSCOPE_API_KEY or $OPENAI_API_KEY, "
        "after --provider; optional for openai)",
    )
    p.add_argument(
        "--base-url",
        help=f"API root (default: $NARRATOR_BASE_URL, else the provider's: "
        f"{DEFAULT_BASE_URLS['aimlapi']}, {DEFAULT_BASE_URLS['dashscope']}, "
        f"{DEFAULT_BASE_URLS['openai']})",
    )
    p.add_argument(
        "--model",
        help="model (default: alibaba/qwen3-tts-flash for aimlapi, qwen3-tts-flash for "
        "dashscope, tts-1 for openai)",
    )
    p.add_argument(
        "--region",
        default="intl",
        choices=["intl", "cn"],
        help="dashscope region: intl (Singapore) or cn (Beijing); keys differ",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help=f"requests in flight at most (default: the provider's; {_PACE_HELP})",
    )
    p.add_argument(
        "--rpm",
        type=positive_float,
        help="requests per minute at most, spread evenly (default: the provider's)",
    )
    p.add_argument("--max-chars", type=as_int, default=600, help="billing characters per chunk")
    p.add_argument("--gap-ms", type=non_negative_int, default=300, help="silence between chunks")
    p.add_argument(
        "--chapter-gap-ms", type=non_negative_int, default=1200, help="silence between chapters"
    )
    p.add_argument(
        "--paragraph-gap-ms",
        type=non_negative_int,
        default=600,
        help="silence before a new paragraph",
    )
    _add_audiobook_options(p)
    p.add_argument("--retries", type=positive_int, default=8, help="attempts per chunk")
    p.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="fail the run when no chunk progresses for S seconds "
        "(default: twice the request timeout plus three minutes, 420 s)",
    )
    p.add_argument(
        "--backoff",
        type=non_negative_float,
        default=0.5,
        metavar="S",
        help="first retry delay in seconds, doubling each time (jittered); 0 retries at once",
    )
    p.add_argument("--cache-dir", help="segment store (default: $XDG_CACHE_HOME/narrator)")
    p.add_argument("--report", metavar="FILE.json", help="write a JSON report of the run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_qa_options(p)
    p.set_defaults(func=cmd_narrate)
    narrate = p

    p = sub.add_parser(
        "check",
        parents=[narrate],
        conflict_handler="resolve",
        help="run the quality gate over stored segments (sends nothing); --fix redoes bad ones",
        description="Judge the stored audio of each INPUT's chunks (the options say which: "
        "the same as the narrate command's) and print the flagged segments with their "
        "start time. Sends nothing unless --fix.",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="synthesize the flagged segments again (billed) and rebuild the audiobooks",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "estimate", help="requests, characters, cost and time a run would take; sends nothing"
    )
    _add_input_options(p)
    _add_estimate_options(p)
    p.add_argument("--provider", default="aimlapi", choices=PROVIDERS, help="the TTS service")
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help=f"requests in flight at most (default: the provider's; {_PACE_HELP})",
    )
    p.add_argument(
        "--rpm",
        type=positive_float,
        help="requests per minute at most, spread evenly (default: the provider's)",
    )
    p.add_argument("--max-chars", type=as_int, default=600, help="billing characters per chunk")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("demo", help="narrate through a local emulator of the AIML API (no key)")
    p.add_argument(
        "inputs",
        nargs="*",
        default=["samples"],
        metavar="INPUT",
        help="files, folders or URLs to narrate (default: samples)",
    )
    p.add_argument("-o", "--output", default="out", help="folder for the audiobooks")
    p.add_argument("--voice", default="Cherry", help="voice name; `narrator voices` lists them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run the emulator of the AIML, DashScope or OpenAI API")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=non_negative_int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", help="the only key accepted (default: any)")
    p.add_argument("--rpm", type=positive_float, help="requests per minute allowed, then 429")
    p.add_argument(
        "--max-concurrency", type=positive_int, help="requests in flight allowed, then 429"
    )
    p.add_argument("--latency", type=non_negative_float, default=0.0, help="seconds per request")
    p.add_argument("--fail-rate", type=share, default=0.0, help="share of random 5xx answers")
    p.add_argument(
        "--shape",
        default="object",
        choices=["object", "string", "binary", "mixed"],
        help="success body: audio URL in an object, as a string, the WAV itself, or rotating",
    )
    p.add_argument("--engine", default="espeak", choices=["espeak", "tone"], help="the voice")
    p.add_argument("--url-ttl", type=positive_float, default=86400.0, help="seconds a link lives")
    p.add_argument("--drop-rate", type=share, default=0.0, help="share of dropped connections")
    p.add_argument("--truncate-rate", type=share, default=0.0, help="share of cut-short downloads")
    p.add_argument(
        "--credits",
        type=non_negative_int,
        help="billing characters the account may spend, then 403",
    )
    p.add_argument(
        "--retry-after", type=non_negative_float, help="Retry-After seconds on 429 answers"
    )
    p.add_argument("--seed", type=as_int, help="random seed for the fault knobs")
    p.add_argument(
        "--bad-audio-rate",
        type=share,
        default=0.0,
        metavar="P",
        help="share of answers whose audio is bad (billed like good ones)",
    )
    p.add_argument(
        "--bad-audio-kinds",
        default="silent,cut,runaway",
        metavar="K,K",
        help="which bad audio: silent, cut, runaway, comma-separated (default: all three)",
    )
    p.add_argument(
        "--api",
        default="aimlapi",
        choices=["aimlapi", "dashscope", "openai"],
        help="which service's endpoint to emulate",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "voices", help="list the voices and their languages or dialects, and each provider's pace"
    )
    p.add_argument(
        "--provider",
        default="aimlapi",
        choices=[*PROVIDERS, "all"],
        help="whose voices (default: aimlapi; all: every provider's)",
    )
    p.set_defaults(func=cmd_voices)

    p = sub.add_parser("feed", help="write DIR/feed.xml, a podcast feed of the audiobooks in DIR")
    p.add_argument("folder", metavar="DIR", help="folder of audiobooks; feed.xml is written there")
    p.add_argument(
        "--base-url", required=True, help="URL where DIR is served, e.g. https://host/x/"
    )
    p.add_argument("--title", help="the podcast's title (default: the folder's name)")
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser("cache", help="show or clear the segment store")
    p.add_argument(
        "action", choices=["info", "clear"], help="info: size and states; clear: empty it"
    )
    p.add_argument("--cache-dir", help="segment store (default: $XDG_CACHE_HOME/narrator)")
    p.set_defaults(func=cmd_cache)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line over the settings file: flags > file > built-in defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "config"):
        return args
    path = find_config(args.config, Path.cwd())
    if path is None:
        return args
    # argparse offers no public way to reach the subcommands' parsers.
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = set().union(*(option_names(p) for p in commands.choices.values()))
    settings = load_config(path)
    apply_config(commands.choices[args.command], settings, source=str(path), known_elsewhere=known)
    given_url = getattr(args, "base_url", None)
    args = parser.parse_args(argv)
    endpoint = endpoint_setting(settings)
    if endpoint is not None and given_url is None and hasattr(args, "trust_settings"):
        # Where the endpoint came from, so the key is not sent there unconfirmed.
        args.endpoint_source = (path, endpoint[0], args.config is not None)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parse(argv)
    except ConfigError as exc:
        print(f"narrator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="narrator: %(message)s",
    )
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
        return code
    except ConfigError as exc:
        print(f"narrator: {exc}", file=sys.stderr)
        return 2
    except NarratorError as exc:
        print(f"narrator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("narrator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `narrator voices | head -3`: the reader has all it wanted. Point stdout at
        # /dev/null so the flush at exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
