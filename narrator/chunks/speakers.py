"""Who speaks in a document, and how that was found: what ``narrator cast`` lists.

Sends nothing: the paragraphs go through the same attribution a run uses
(:func:`narrator.chunks.cast.cast_chapter`), and each speaker's quotations are counted
by how they were placed (a speech tag, turn-taking, a speaker line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..inputs.documents import Document
from .attribution import cast_chapter
from .cast import NARRATION, UNATTRIBUTED, Casting
from .split import normalize_paragraph

__all__ = ["Speaker", "Survey", "cast_skeleton", "survey"]


@dataclass
class Speaker:
    """One speaker found: quotations by how they were placed, and the first one."""

    name: str
    tag: int = 0
    turn: int = 0
    line: int = 0
    first: str = ""

    @property
    def quotations(self) -> int:
        return self.tag + self.turn + self.line


@dataclass
class Survey:
    """The speakers of some documents, in order of their first quotation."""

    speakers: dict[str, Speaker] = field(default_factory=dict)
    unattributed: int = 0
    warnings: list[str] = field(default_factory=list)


def survey(documents: Iterable[tuple[Document, str]], casting: Casting) -> Survey:
    """The speakers of ``documents`` (each with its language), as a run would cast them.

    Speech is looked for even when ``casting`` gives no voice to it: this is how a cast
    file is started.
    """
    found = Survey()
    for doc, lang in documents:
        for chapter in doc.chapters:
            paragraphs = [p for p in map(normalize_paragraph, chapter.paragraphs) if p]
            lines, warnings = cast_chapter(paragraphs, lang, casting)
            found.warnings += [f"{doc.source}: chapter {chapter.index + 1}: {w}" for w in warnings]
            for para, its_lines in zip(paragraphs, lines, strict=True):
                for line in its_lines:
                    if line.speaker == NARRATION or line.silent or line.continued:
                        continue  # a quotation over paragraphs counts once
                    if line.speaker == UNATTRIBUTED:
                        found.unattributed += 1
                        continue
                    speaker = found.speakers.setdefault(line.speaker, Speaker(line.speaker))
                    if line.how in ("tag", "turn", "line"):
                        setattr(speaker, line.how, getattr(speaker, line.how) + 1)
                    if not speaker.first:
                        speaker.first = para[line.start : line.end].strip()
    return found


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def cast_skeleton(found: Survey, casting: Casting, voices: Sequence[str]) -> str:
    """A cast file to edit: every speaker found, with the voice the cast gives them, or
    one of ``voices`` in turn (not the narrator's)."""
    spare = [v for v in voices if v.casefold() != casting.voice.casefold()] or list(voices)
    lines = [
        '# A cast for narrator (docs/cast.md): name = "voice" (`narrator voices` lists them),',
        '# or name = {voice = "...", also = ["other names"]}.',
        "[cast]",
    ]
    n = 0
    for speaker in sorted(found.speakers.values(), key=lambda s: -s.quotations):
        member = casting.cast.lookup(speaker.name)
        if member is not None:
            voice = member.voice
        else:
            voice = spare[n % len(spare)] if spare else casting.voice
            n += 1
        key = (
            speaker.name
            if _BARE.fullmatch(speaker.name)
            else json.dumps(speaker.name, ensure_ascii=False)
        )
        how = ", ".join(
            f"{count} by {name}"
            for name, count in (
                ("tag", speaker.tag),
                ("turn-taking", speaker.turn),
                ("speaker line", speaker.line),
            )
            if count
        )
        lines.append(f'{key} = "{voice}"  # {speaker.quotations} quotations ({how})')
    if found.unattributed:
        lines.append(
            f"# {found.unattributed} quotations found no speaker: they are read in --dialogue-voice"
        )
    return "\n".join(lines) + "\n"
