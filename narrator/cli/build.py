"""From parsed arguments to the library's objects: settings, the works to narrate, an
estimate. The environment is read here (keys, base URL, cache folder) and nowhere below.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..book.audiobook import AudiobookOptions
from ..estimate import Estimate, estimate, most_cost
from ..inputs.documents import Document
from ..run.batch import Batch, Loaded, check_outputs, find_batch, plan_works, read_batch
from ..run.pipeline import DocumentReport, Work
from ..settings import Settings, default
from ..util.folders import default_cache_dir
from ..util.netpolicy import NetPolicy
from ..util.registry import REGISTRY
from ..util.sanitize import clean_line, masked_url
from ..util.trust import FLAGS, Kind

__all__ = [
    "announce_endpoint", "assumed_price", "lexicon_settings", "load", "load_works",
    "make_estimate", "make_say_settings", "make_settings", "over_limit", "report_command",
    "spending_limit",
]  # fmt: skip

log = logging.getLogger("narrator")


def _network(args: argparse.Namespace, endpoint: str | None = None) -> NetPolicy:
    """What URL inputs and audio links may reach besides public addresses."""
    return NetPolicy.make(
        endpoint=endpoint,
        hosts=getattr(args, "allow_host", None) or (),
        allow_private=getattr(args, "allow_private_network", False),
    )


def load(
    args: argparse.Namespace, *, outputs: bool = True, endpoint: str | None = None
) -> tuple[Batch, Loaded]:
    """Find and read every input: the batch (inputs in order, whether there are several)
    and what was read (the documents, reports of inputs left out). ``outputs``: check -o
    first (not for an estimate). URL inputs may be on ``endpoint``'s host, like its audio
    links."""
    batch = find_batch(
        args.inputs,
        include=getattr(args, "include", None) or (),
        exclude=getattr(args, "exclude", None) or (),
        follow_symlinks=getattr(args, "follow_symlinks", False),
    )
    if outputs:
        check_outputs(
            batch, args.output, getattr(args, "format", None), getattr(args, "read_along", None)
        )
    stdin = sys.stdin.buffer.read() if batch.reads_stdin else None
    loaded = asyncio.run(
        read_batch(
            batch,
            stdin=stdin,
            timeout=getattr(args, "fetch_timeout", 30.0),
            max_bytes=int(getattr(args, "max_page_mb", 20.0) * 1_000_000),
            max_text_bytes=int(getattr(args, "max_text_mb", 20.0) * 1_000_000),
            policy=_network(args, endpoint),
        )
    )
    return batch, loaded


def load_works(
    args: argparse.Namespace, endpoint: str | None = None
) -> tuple[list[Work], tuple[DocumentReport, ...], tuple[str, ...]]:
    """The documents to narrate with their outputs, reports of inputs left out, and
    every input's name in order."""
    batch, loaded = load(args, endpoint=endpoint)
    planned = plan_works(batch, loaded, args.output, getattr(args, "format", None))
    return planned, loaded.unread, batch.order


def _endpoint_origin(args: argparse.Namespace) -> str:
    """Where the base URL came from, in words (a settings file passed the trust model in
    :func:`narrator.cli.parser.parse` already)."""
    origin = getattr(args, "settings_origin", {}).get("base_url")
    if origin is not None:
        return str(origin)
    return "--base-url" if args.base_url else "$NARRATOR_BASE_URL"


def announce_endpoint(settings: Settings, origin: str) -> None:
    """Say once where the key goes when it is not the provider's own service."""
    if not REGISTRY[settings.provider].networked or not settings.api_key:
        return
    if settings.base_url.rstrip("/") == REGISTRY[settings.provider].base_url(settings.region):
        return
    log.warning(
        "sending the API key to %s (from %s)", clean_line(settings.base_url, limit=200), origin
    )


def make_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    variable = REGISTRY[args.provider].key_variable
    api_key = args.api_key or (env.get(variable) if variable else None) or None
    # Empty base URL, model and voice: the provider's own defaults (see settings.py).
    base_url = args.base_url or env.get("NARRATOR_BASE_URL") or ""
    if base_url:
        args.endpoint_origin = _endpoint_origin(args)
    return Settings(
        provider=args.provider,
        api_key=api_key,
        base_url=base_url,
        model=args.model or "",
        region=args.region,
        voice=args.voice or "",
        concurrency=args.concurrency or 0,  # 0: the provider's default
        rpm=args.rpm or 0.0,
        max_chars=args.max_chars or 0,  # 0: the provider's default
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
            cue=args.cue,
            read_along=Path(args.read_along) if args.read_along else None,
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
        cache_max_bytes=getattr(args, "cache_max_size", default("cache_max_bytes")),
        lexicon=lexicon_settings(args)[0],
        lexicon_override=lexicon_settings(args)[1],
        dialogue_voice=getattr(args, "dialogue_voice", None) or "",
        cast=cast_settings(args)[0],
        cast_override=cast_settings(args)[1],
        speaker_lines=getattr(args, "speaker_lines", False),
        quote_gap_ms=getattr(args, "quote_gap_ms", default("quote_gap_ms")),
        max_text_bytes=int(args.max_text_mb * 1_000_000),
    )


def cast_settings(args: argparse.Namespace) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The settings file's casts (they come first) and the command line's (last)."""
    paths = [Path(p) for p in getattr(args, "cast", None) or ()]
    first = getattr(args, "cast_from_file", 0)
    return tuple(paths[:first]), tuple(paths[first:])


def lexicon_settings(args: argparse.Namespace) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The settings file's lexicons (they come first) and the command line's (last)."""
    paths = [Path(p) for p in getattr(args, "lexicon", None) or ()]
    first = getattr(args, "lexicon_from_file", 0)
    return tuple(paths[:first]), tuple(paths[first:])


def make_say_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The settings ``narrator say`` needs: the service, the voice and the lexicons."""
    variable = REGISTRY[args.provider].key_variable
    base_url = args.base_url or env.get("NARRATOR_BASE_URL") or ""
    if base_url:
        args.endpoint_origin = _endpoint_origin(args)
    return Settings(
        provider=args.provider,
        api_key=args.api_key or (env.get(variable) if variable else None) or None,
        base_url=base_url,
        model=args.model or "",
        region=args.region,
        voice=args.voice or "",
        lang=args.lang,
        allow_private_network=args.allow_private_network,
        lexicon=lexicon_settings(args)[0],
        lexicon_override=lexicon_settings(args)[1],
    )


def assumed_price(args: argparse.Namespace, provider: str) -> float:
    """What 10,000 billing characters cost: the provider's known price, else
    --price-per-10k-chars (the estimate's)."""
    price = REGISTRY[provider].price_per_10k_chars
    return args.price_per_10k_chars if price is None else price


def spending_limit(args: argparse.Namespace, price: float) -> tuple[float, str] | None:
    """The limit a run is held to before anything is paid, and its flag: --max-cost, else
    --confirm-above unless --yes; None when nothing is paid (``price`` 0) or --yes."""
    if price == 0:
        return None
    if args.max_cost is not None:
        return args.max_cost, "--max-cost"
    if args.yes:
        return None
    return args.confirm_above, "--confirm-above"


def over_limit(args: argparse.Namespace, documents: Sequence[Document], limit: float) -> bool:
    """Whether the estimate may be over ``limit``: counted first without splitting, which
    settles most runs at once; only one whose most possible cost is over needs the split."""
    return most_cost(documents, **_priced_as(args)) > limit


def make_estimate(args: argparse.Namespace, documents: Sequence[Document]) -> Estimate:
    return estimate(
        documents,
        **_priced_as(args),
        max_chars=args.max_chars or 0,  # 0: the provider's
        rpm=args.rpm,  # None: the provider's
        concurrency=args.concurrency,
        latency=args.assume_latency,
    )


def _priced_as(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`estimate` and :func:`most_cost` both take from the command line: how
    the text is read (language, lexicons, cast, voices, model, size limit) and priced."""
    lexicons, lexicons_last = lexicon_settings(args)
    casts, casts_last = cast_settings(args)
    return {
        "provider": getattr(args, "provider", None) or default("provider"),
        "lang": args.lang,
        "price_per_10k_chars": args.price_per_10k_chars,
        "lexicons": lexicons,
        "lexicons_last": lexicons_last,
        "voice": getattr(args, "voice", None) or "",
        "casts": casts,
        "casts_last": casts_last,
        "dialogue_voice": getattr(args, "dialogue_voice", None) or "",
        "speaker_lines": getattr(args, "speaker_lines", False),
        "model": getattr(args, "model", None) or "",
        "max_text_chars": int(args.max_text_mb * 1_000_000),
    }


# Every flag that takes a secret, as typed (abbreviations are refused by the parser).
_SECRET_FLAGS = tuple("--" + name.replace("_", "-") for name, kind in FLAGS.items()
                      if kind is Kind.SECRET)  # fmt: skip
# Every flag that takes a service's URL (its dest may differ from its name: --store).
_SERVICE_FLAGS = ("--queue", "--store", "--objects")


def report_command(argv: Sequence[str], settings: Settings) -> str:
    """The command as typed, for the report's "run it again": a key on it is never
    written down, but named by its variable, so the line still runs. The key's value is
    scrubbed wherever it appears, whatever flag (or spelling) carried it."""
    variable = REGISTRY[settings.provider].key_variable or "API_KEY"
    secrets = [word.partition("=")[2] for word in argv if word.startswith(_SECRET_FLAGS)]
    secrets += [after for word, after in itertools.pairwise(argv) if word in _SECRET_FLAGS]
    if settings.api_key:
        secrets.append(settings.api_key)
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
    words, hide, service = ["narrator"], False, False
    for word in argv:
        name, equals, value = word.partition("=")
        is_key = name in _SECRET_FLAGS
        if service or (equals and name in _SERVICE_FLAGS):
            # A service's URL keeps its place with its password masked.
            words.append(
                shlex.quote(masked_url(word) if service else f"{name}={masked_url(value)}")
            )
        elif hide:
            words.append(f'"${variable}"')
        elif is_key and equals:
            words.append(f'{name}="${variable}"')
        elif word in secrets:
            words.append(f'"${variable}"')
        else:
            # Inside a longer word (a URL's query...): a real key is long, and replacing
            # a short one everywhere would mangle the line without hiding anything.
            for secret in (s for s in secrets if len(s) >= 6):
                word = word.replace(secret, f"${variable}")
            words.append(shlex.quote(word))
        hide = is_key and not equals
        service = name in _SERVICE_FLAGS and not equals
    return " ".join(words)
