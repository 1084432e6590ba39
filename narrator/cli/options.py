"""Options several commands share: inputs, estimate, audiobook, quality gate, provider."""

from __future__ import annotations

import argparse

from ..book.encode import FORMATS
from ..estimate import DEFAULT_LATENCY, DEFAULT_PRICE_PER_10K_CHARS
from ..inputs.limits import DEFAULT_MAX_TEXT_BYTES
from ..settings import QA_MODES, REGIONS, default
from ..util.registry import REGISTRY, describe_pace
from .argtypes import (
    as_int,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

__all__ = [
    "add_audiobook_options", "add_config_options", "add_endpoint_options",
    "add_estimate_options", "add_input_options", "add_lexicon_option", "add_pace_options",
    "add_provider", "add_qa_options",
]  # fmt: skip


def add_lexicon_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lexicon",
        action="append",
        metavar="FILE",
        help="pronunciation lexicon (TOML; repeatable, later files win per term; after the "
        "settings file's and each document's own lexicon.toml / NAME.lexicon.toml)",
    )


def add_cast_options(p: argparse.ArgumentParser) -> None:
    """A cast of voices: quoted speech, cast files, speaker lines (docs/cast.md)."""
    p.add_argument(
        "--dialogue-voice",
        metavar="VOICE",
        help="read quoted speech in this voice (speech the cast cannot place, with --cast)",
    )
    p.add_argument(
        "--cast",
        action="append",
        metavar="FILE",
        help="a cast: [cast] name = voice, [chapters] title pattern = voice (TOML; "
        "repeatable; after the settings file's and each document's cast.toml / NAME.cast.toml)",
    )
    p.add_argument(
        "--speaker-lines",
        action="store_true",
        help="a paragraph starting NAME: (ANNA:, Q:) is read by that speaker, the name unread",
    )


def add_input_options(p: argparse.ArgumentParser) -> None:
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
        default=default("lang"),
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
    add_config_options(p)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The settings file, and the confirmation a found one needs to set more than the sound."""
    p.add_argument(
        "--config", metavar="FILE", help="settings file (default: ./narrator.toml if present)"
    )
    p.add_argument(
        "--trust-settings",
        action="store_true",
        help="let a ./narrator.toml found here set commands, paths outside its folder, the "
        "endpoint and spending limits (remembered until the file changes; see docs/security.md)",
    )


def add_estimate_options(p: argparse.ArgumentParser) -> None:
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


def add_audiobook_options(p: argparse.ArgumentParser) -> None:
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


def add_qa_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--qa",
        default=default("qa"),
        choices=QA_MODES,
        help="the audio quality gate: on (redo bad segments, keep and flag the best if "
        "none passes), strict (a document with a flagged segment fails), off "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--qa-retries",
        type=non_negative_int,
        default=default("qa_retries"),
        metavar="N",
        help="times a bad segment is synthesized again, each billed",
    )
    p.add_argument(
        "--qa-budget",
        type=non_negative_float,
        default=default("qa_budget"),
        metavar="PCT",
        help="re-syntheses of bad audio that fix nothing, in %% of the run's chunks; those that "
        "fix their segment are not counted (default: %(default)g)",
    )


def add_provider(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provider", default=default("provider"), choices=tuple(REGISTRY), help="the TTS service"
    )


def add_endpoint_options(p: argparse.ArgumentParser) -> None:
    """Where requests go and with which key and model."""
    p.add_argument(
        "--api-key",
        help="API key (default: $AIMLAPI_KEY, $DASHSCOPE_API_KEY or $OPENAI_API_KEY, "
        "after --provider; optional for openai)",
    )
    p.add_argument(
        "--base-url",
        help="API root (default: $NARRATOR_BASE_URL, else the provider's: "
        + ", ".join(e.base_url() for e in REGISTRY.values() if e.networked)
        + ")",
    )
    p.add_argument(
        "--model",
        help="model (default: "
        + ", ".join(f"{e.model} for {e.name}" for e in REGISTRY.values() if e.networked)
        + ")",
    )
    p.add_argument(
        "--region",
        default=default("region"),
        choices=REGIONS,
        help="dashscope region: intl (Singapore) or cn (Beijing); keys differ",
    )


def _pace_help() -> str:
    # Read when the parser is built, so a provider registered since is listed too.
    return "; ".join(f"{name}: {describe_pace(name)}" for name in REGISTRY)


def add_pace_options(p: argparse.ArgumentParser) -> None:
    """How fast requests go, and how big each is."""
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help=f"requests in flight at most (default: the provider's; {_pace_help()})",
    )
    p.add_argument(
        "--rpm",
        type=positive_float,
        help="requests per minute at most, spread evenly (default: the provider's)",
    )
    p.add_argument(
        "--max-chars",
        type=as_int,
        help="billing characters per chunk (default: the provider's: 4096 for openai, else 600)",
    )
