"""``narrator cast``: who speaks in a text, before a run gives them voices."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..chunks.cast import Cast, Casting
from ..chunks.cast import combined as cast_files
from ..chunks.language import resolve_language
from ..chunks.speakers import cast_skeleton, survey
from ..settings import check_lang, check_voice, default
from ..util.registry import REGISTRY
from ..util.sanitize import clean_line
from .build import cast_settings, load
from .options import add_cast_options, add_input_options
from .render import shorten, table

__all__ = ["add_cast", "cmd_cast"]


def cmd_cast(args: argparse.Namespace) -> int:
    check_lang(args.lang)
    entry = REGISTRY[args.provider]
    voice = args.voice or entry.voice

    def spell(name: str) -> str:
        return check_voice(args.provider, name, model=entry.model, base_url=entry.base_url("intl"))

    first, last = cast_settings(args)
    Cast.load(*first, *last).revoiced(spell)  # a bad one: say so first
    _, loaded = load(args, outputs=False)
    for report in loaded.unread:
        print(f"{report.status.upper()}: {report.input}: {report.errors[0]}", file=sys.stderr)
    documents = [(doc, resolve_language(doc, args.lang)) for _, doc in loaded.documents]
    sources = {doc.source for doc, _ in documents}
    # One document's own cast applies when there is one document; with several, only the
    # named ones (each document may have a cast of its own).
    source = next(iter(sources)) if len(sources) == 1 else "-"
    cast = Cast.load(*cast_files(first, source, last)).revoiced(spell)
    casting = Casting(cast, spell(voice), args.dialogue_voice or "", args.speaker_lines)
    found = survey(documents, casting)
    for warning in found.warnings:
        print(f"warning: {clean_line(warning)}", file=sys.stderr)
    if args.format == "toml":
        sys.stdout.write(cast_skeleton(found, casting, entry.voice_names()[:7]))
        return 0
    rows = [("speaker", "voice", "quotations", "tag", "turn", "line", "first")]
    for s in found.speakers.values():
        member = cast.lookup(s.name)
        rows.append(
            (
                shorten(clean_line(s.name), 24),
                member.voice if member is not None else "-",
                str(s.quotations),
                str(s.tag),
                str(s.turn),
                str(s.line),
                shorten(clean_line(s.first), 50),
            )
        )
    print("\n".join(table(rows, right=(2, 3, 4, 5))))
    print(
        f"{len(found.speakers)} speakers, {found.unattributed} quotations unattributed "
        "(read in --dialogue-voice); `narrator cast --format toml` writes a cast to start from",
        file=sys.stderr,
    )
    return 0


def add_cast(sub: Any) -> None:
    """Add ``narrator cast`` to the subcommands."""
    p = sub.add_parser(
        "cast", help="list who speaks in a text (speech tags, turn-taking); sends nothing"
    )
    add_input_options(p)
    p.add_argument("--voice", default="", help="the narrator's voice")
    p.add_argument(
        "--provider",
        default=default("provider"),
        choices=sorted(REGISTRY),
        help="whose voices a new cast suggests and checks",
    )
    p.add_argument(
        "--format", default="text", choices=["text", "toml"], help="a table, or a cast to edit"
    )
    add_cast_options(p)
    p.set_defaults(func=cmd_cast)
