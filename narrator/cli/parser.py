"""The command line's grammar: one parser per command, and the settings file under the flags.

Flags > settings file > built-in defaults: :func:`parse` applies the file as new parser
defaults and parses again.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..settings import default, default_stall_seconds
from ..util.registry import REGISTRY
from ..util.trust import COMMANDS
from .argtypes import (
    HelpFormatter,
    Parser,
    age,
    as_int,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    share,
    size,
)
from .cast import add_cast
from .cluster import add_worker
from .commands import (
    cmd_cache,
    cmd_check,
    cmd_demo,
    cmd_estimate,
    cmd_feed,
    cmd_narrate,
    cmd_report,
    cmd_serve,
    cmd_voices,
)
from .config import apply_config, find_config, load_config, option_names, vouch
from .options import (
    add_audiobook_options,
    add_cast_options,
    add_endpoint_options,
    add_estimate_options,
    add_input_options,
    add_lexicon_option,
    add_pace_options,
    add_provider,
    add_qa_options,
)
from .submit import add_submit
from .watch import add_status, add_watch
from .words import add_say, add_words

__all__ = ["DEFAULT_CONFIRM_ABOVE", "build_parser", "parse"]

# Without --max-cost, a run estimated above this many dollars needs --yes: more than a
# long novel costs at the default price, so only a surprise (a document bomb) trips it.
DEFAULT_CONFIRM_ABOVE = 10.0

# What add_subparsers returns; argparse names it only privately.
_Commands = Any


def _spending_options(p: argparse.ArgumentParser) -> None:
    """What a run may cost and where the key may go, checked before anything is sent."""
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE|DIR",
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


def _gap_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gap-ms", type=non_negative_int, default=default("gap_ms"), help="silence between chunks"
    )
    p.add_argument(
        "--chapter-gap-ms",
        type=non_negative_int,
        default=default("chapter_gap_ms"),
        help="silence between chapters",
    )
    p.add_argument(
        "--paragraph-gap-ms",
        type=non_negative_int,
        default=default("paragraph_gap_ms"),
        help="silence before a new paragraph",
    )
    p.add_argument(
        "--quote-gap-ms",
        type=non_negative_int,
        default=default("quote_gap_ms"),
        help="silence between a quotation and its tag, in one paragraph (at most --gap-ms)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    """Retries, the watchdog, the store, the report and the bar."""
    p.add_argument(
        "--retries", type=positive_int, default=default("retries"), help="attempts per chunk"
    )
    p.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="fail the run when no chunk progresses for S seconds "
        "(default: twice the request timeout plus three minutes, "
        f"{default_stall_seconds(default('request_timeout')):g} s)",
    )
    p.add_argument(
        "--backoff",
        type=non_negative_float,
        default=default("backoff_base"),
        metavar="S",
        help="first retry delay in seconds, doubling each time (jittered); 0 retries at once",
    )
    p.add_argument("--cache-dir", help="segment store (default: $XDG_CACHE_HOME/narrator)")
    p.add_argument(
        "--cache-max-size",
        type=size,
        default=default("cache_max_bytes"),
        metavar="SIZE",
        help="cap the cache at SIZE (20GB; 0: none) at the end of a run, least recently used first",
    )
    p.add_argument(
        "--report",
        metavar="FILE.json|FILE.html",
        help="write a report of the run: JSON, or for .html a page to read and listen from",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _narrate(sub: _Commands) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "narrate",
        help="narrate texts into audiobooks (MP3, M4B, WAV, ...)",
        usage=_NARRATE_USAGE,
    )
    _narrate_options(p)
    p.set_defaults(func=cmd_narrate)
    return p


_NARRATE_USAGE = (
    "%(prog)s INPUT [INPUT ...] [-o FILE|DIR] [--voice NAME] [--provider NAME] [options]"
)
# What people reach for first, shown first in --help whichever group adds it.
_FIRST = ("output", "voice", "provider", "api_key", "format", "dry_run")


def _voice_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--voice", help="voice name (default: Cherry; alloy for openai; see `narrator voices`)"
    )


def _narrate_options(p: argparse.ArgumentParser) -> None:
    """narrate's options (watch's and check's too), in --help by what they are for."""
    sections: list[tuple[str, Callable[[argparse.ArgumentParser], None]]] = [
        ("what it reads", add_input_options),
        ("cost and safety", add_estimate_options),
        ("cost and safety", _spending_options),
        ("the service", _voice_option),
        ("the service", add_provider),
        ("the service", add_endpoint_options),
        ("the service", add_pace_options),
        ("the audiobook", _gap_options),
        ("the audiobook", add_audiobook_options),
        ("pronunciation", add_lexicon_option),
        ("a cast of voices", add_cast_options),
        ("quality", add_qa_options),
        ("the run and the cache", _run_options),
    ]
    _grouped(p, sections)


def _grouped(
    p: argparse.ArgumentParser,
    sections: Sequence[tuple[str, Callable[[argparse.ArgumentParser], None]]],
) -> None:
    """Add each section's options, listed in --help under its title; the usual options
    (``_FIRST``) come first, in a group of their own.

    argparse lists an option under the group that added it; the helpers add theirs to
    the parser, so each is moved to its group here (help output only: parsing reads
    the parser's own list).
    """
    first = p.add_argument_group("the usual options")
    groups: dict[str, Any] = {}
    loose = p._optionals._group_actions  # argparse offers no public way to regroup
    for action in list(loose):
        if action.dest in _FIRST:
            loose.remove(action)
            first._group_actions.append(action)
    for title, add in sections:
        before = len(p._actions)
        add(p)
        for action in p._actions[before:]:
            if action not in loose:  # a positional argument stays where it is
                continue
            loose.remove(action)
            if action.dest in _FIRST:
                first._group_actions.append(action)
            else:
                if title not in groups:
                    groups[title] = p.add_argument_group(title)
                groups[title]._group_actions.append(action)
    first._group_actions.sort(key=lambda action: _FIRST.index(action.dest))


def _check(sub: _Commands, narrate: argparse.ArgumentParser) -> None:
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


def _estimate(sub: _Commands) -> None:
    p = sub.add_parser(
        "estimate", help="requests, characters, cost and time a run would take; sends nothing"
    )
    add_input_options(p)
    add_estimate_options(p)
    add_provider(p)
    add_pace_options(p)
    add_lexicon_option(p)
    add_cast_options(p)
    p.add_argument("--voice", help="the narrator's voice (lexicon scopes, the cast's counts)")
    p.set_defaults(func=cmd_estimate)


def _demo(sub: _Commands) -> None:
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


def _serve(sub: _Commands) -> None:
    p = sub.add_parser("serve", help="run the emulator of the AIML, DashScope or OpenAI API")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=non_negative_int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", help="the only key accepted (default: any)")
    p.add_argument("--rpm", type=positive_float, help="requests per minute allowed, then 429")
    p.add_argument(
        "--max-concurrency", type=positive_int, help="requests in flight allowed, then 429"
    )
    p.add_argument("--latency", type=non_negative_float, default=0.0, help="seconds per request")
    p.add_argument(
        "--latency-per-char",
        type=non_negative_float,
        default=0.0,
        help="seconds per billing character, added to --latency",
    )
    p.add_argument("--fail-rate", type=share, default=0.0, help="share of random 5xx answers")
    p.add_argument(
        "--shape",
        default="object",
        choices=["object", "string", "binary", "mixed"],
        help="success body: audio URL in an object, as a string, the WAV itself, or rotating",
    )
    p.add_argument(
        "--engine",
        default="espeak",
        choices=["espeak", "speech", "tone"],
        help="the voice: eSpeak NG reading the text, speech-like clips as long as the text "
        "takes to read (cheap: for benchmarks), or a tone",
    )
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


def _voices(sub: _Commands) -> None:
    p = sub.add_parser(
        "voices", help="list the voices and their languages or dialects, and each provider's pace"
    )
    p.add_argument(
        "--provider",
        default=default("provider"),
        choices=[*REGISTRY, "all"],
        help="whose voices (default: %(default)s; all: every provider's)",
    )
    p.set_defaults(func=cmd_voices)


def _feed(sub: _Commands) -> None:
    p = sub.add_parser("feed", help="write DIR/feed.xml, a podcast feed of the audiobooks in DIR")
    p.add_argument("folder", metavar="DIR", help="folder of audiobooks; feed.xml is written there")
    p.add_argument(
        "--base-url", required=True, help="URL where DIR is served, e.g. https://host/x/"
    )
    p.add_argument("--title", help="the podcast's title (default: the folder's name)")
    p.set_defaults(func=cmd_feed)


def _cache(sub: _Commands) -> None:
    p = sub.add_parser("cache", help="show, prune or clear the segment store")
    p.add_argument("action", choices=["info", "prune", "clear"], help="prune: least recently used")
    p.add_argument("--older-than", type=age, metavar="AGE", help="prune: last used before (30d)")
    p.add_argument("--max-size", type=size, metavar="SIZE", help="prune: down to this (10GB)")
    p.add_argument("--cache-dir", help="segment store (default: $XDG_CACHE_HOME/narrator)")
    p.set_defaults(func=cmd_cache)


def _report(sub: _Commands) -> None:
    p = sub.add_parser("report", help="render a JSON run report (narrate --report) as HTML")
    p.add_argument("run", metavar="RUN.json", help="the JSON report of a run")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the page to write")
    p.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """The ``narrator`` parser, each command's ``func`` set to run it."""
    parser = Parser(
        prog="narrator",
        description="Turn long text into audiobooks through text-to-speech services.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"narrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _check(sub, _narrate(sub))
    add_watch(sub, _narrate_options)
    add_status(sub)
    add_worker(sub, _narrate_options)
    add_submit(sub, _narrate_options)
    for add in (
        _estimate,
        add_words,
        add_cast,
        add_say,
        _demo,
        _serve,
        _voices,
        _feed,
        _cache,
        _report,
    ):
        add(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line over the settings file: flags > file > built-in defaults.

    A file found in the current folder goes through the trust model first
    (:func:`narrator.util.trust.refuse_found`); ``args.settings_origin`` names, for each
    option the file set, where it came from (for the notice that says where the key goes).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not COMMANDS[args.command].settings_file:
        return args
    path = find_config(args.config, Path.cwd())
    if path is None:
        return args
    # argparse offers no public way to reach the subcommands' parsers.
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = set().union(*(option_names(p) for p in commands.choices.values()))
    settings, sha = load_config(path)
    apply_config(commands.choices[args.command], settings, source=str(path), known_elsewhere=known)
    before, args = args, parser.parse_args(argv)
    # What the file changed: a flag given on the command line wins, so it is not the file's.
    effective = {k for k, v in vars(args).items() if getattr(before, k, None) != v}
    origin = vouch(path, settings, sha, effective, named=args.config is not None,
                   confirmed=args.trust_settings, env=os.environ)  # fmt: skip
    args.settings_origin = dict.fromkeys(effective, origin)
    if hasattr(args, "lexicon") and "lexicon" in settings:
        # The file's lexicons come first, before the command line's, and are found
        # beside the file.
        given = settings["lexicon"]
        args.lexicon_from_file = n = len(given) if isinstance(given, list) else 1
        args.lexicon[:n] = [str(path.parent / p) for p in args.lexicon[:n]]
    if hasattr(args, "cast") and "cast" in settings:
        given = settings["cast"]  # the same for casts
        args.cast_from_file = n = len(given) if isinstance(given, list) else 1
        args.cast[:n] = [str(path.parent / p) for p in args.cast[:n]]
    return args
