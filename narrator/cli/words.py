"""``narrator words`` and ``narrator say``: checking pronunciation before a long run."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ..chunks.language import resolve_language
from ..chunks.lexicon import Lexicon, combined
from ..chunks.words import find_words, skeleton
from ..run.audition import say
from ..settings import check_lang, default
from ..util.folders import check_writable
from ..util.sanitize import shown
from .build import announce_endpoint, lexicon_settings, load, make_say_settings
from .options import (
    add_config_options,
    add_endpoint_options,
    add_input_options,
    add_lexicon_option,
    add_provider,
)
from .render import print_unread, shorten, table

__all__ = ["add_say", "add_words", "cmd_say", "cmd_words"]


def cmd_words(args: argparse.Namespace) -> int:
    check_lang(args.lang)
    first, last = lexicon_settings(args)
    Lexicon.load(*first, *last)  # a bad one: say so first
    _, loaded = load(args, outputs=False)
    print_unread(loaded.unread)
    documents = [
        (
            doc,
            resolve_language(doc, args.lang),
            Lexicon.load(*combined(first, doc.source, last)),
        )
        for _, doc in loaded.documents
    ]
    words = find_words(documents, voice=args.voice, many=len(documents) > 1)
    if args.format == "toml":
        sys.stdout.write(skeleton(words))
        return 0
    rows = [("word", "kind", "count", "first", "lexicon")]
    rows += [(shorten(w.text, 40), w.kind, str(w.count), w.first, w.covered) for w in words]
    print("\n".join(table(rows, right=(2,))))
    uncovered = sum(w.covered != "yes" for w in words)
    print(
        f"{len(words)} words a voice may read wrong, {uncovered} not covered by the lexicon; "
        "`narrator words --format toml` writes a lexicon to start from",
        file=sys.stderr,
    )
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    settings = make_say_settings(args, os.environ)
    lexicon = Lexicon.load(*settings.lexicon, *settings.lexicon_override)
    announce_endpoint(settings, getattr(args, "endpoint_origin", ""))
    output = Path(args.output) if args.output else None
    if output is not None:
        check_writable(output.absolute().parent, what="-o")
    made = asyncio.run(say(args.text, settings, output=output, lexicon=lexicon))
    if made.spoken != " ".join(args.text.split()):
        print(f"said: {shown(made.spoken)}", file=sys.stderr)
    print(shown(str(made.path)))
    return 0


def add_words(sub: Any) -> None:
    """Add ``narrator words`` to the subcommands."""
    p = sub.add_parser(
        "words",
        help="list words a voice may read wrong (acronyms, names, symbols); sends nothing",
    )
    add_input_options(p)
    p.add_argument("--voice", default="", help="the voice the lexicon's entries are scoped by")
    p.add_argument(
        "--format", default="text", choices=["text", "toml"], help="a table, or a lexicon skeleton"
    )
    add_lexicon_option(p)
    p.set_defaults(func=cmd_words)


def add_say(sub: Any) -> None:
    """Add ``narrator say`` to the subcommands."""
    p = sub.add_parser(
        "say", help="synthesize one short text (one request, the lexicon applied) into a WAV"
    )
    p.add_argument("text", metavar="TEXT", help="what to say")
    p.add_argument("-o", "--output", metavar="FILE.wav", help="default: a new temporary file")
    p.add_argument("--voice", help="voice name (see `narrator voices`)")
    p.add_argument("--lang", default=default("lang"), help="the text's language, or auto")
    add_provider(p)
    add_endpoint_options(p)
    add_lexicon_option(p)
    p.add_argument(
        "--allow-private-network",
        action="store_true",
        help="fetch audio links from any loopback, link-local or private address",
    )
    add_config_options(p)
    p.set_defaults(func=cmd_say)
