"""A cast of voices: who says each quotation, and in which voice.

A cast is a TOML file::

    [cast]                       # name = "voice", or a table with aliases
    Alice = "Cherry"
    Bob = {voice = "Ethan", also = ["Mr. Smith", "Bobby"]}

    [chapters]                   # a chapter title pattern -> the narrator's voice there
    "Part 2*" = "Ethan"

Casts combine in order like lexicons (the settings file's, ``cast.toml`` in the
document's folder, ``NAME.cast.toml`` beside it, then ``--cast FILE``), a later entry
replacing an earlier one of the same name. A cast found beside a document is not
trusted: it may only map names to voices, so it is bounded (:data:`MAX_BYTES`,
:data:`MAX_ENTRIES`, :data:`MAX_ALIASES`, :data:`MAX_NAME`) and any other key is refused.

A :class:`Casting` says which voice each speaker gets; who says each quotation is
:mod:`narrator.chunks.attribution`'s to find.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from ..errors import CastError

__all__ = [
    "LOCAL_NAMES", "MAX_ALIASES", "MAX_BYTES", "MAX_ENTRIES", "MAX_NAME", "NARRATION",
    "UNATTRIBUTED", "Cast", "CastError", "Casting", "Member", "combined", "document_casting",
    "local_casts",
]  # fmt: skip

FOLDER_CAST = "cast.toml"
DOCUMENT_SUFFIX = ".cast.toml"
LOCAL_NAMES = (FOLDER_CAST, f"NAME{DOCUMENT_SUFFIX}")
# Bounds on what a cast file may cost: it is read from a document's folder.
MAX_BYTES = 64 * 1024
MAX_ENTRIES = 256  # cast members plus chapter patterns
MAX_ALIASES = 16
MAX_NAME = 64

NARRATION = ""  # the speaker of narration
UNATTRIBUTED = "?"  # speech nobody could be given


@dataclass(frozen=True, slots=True)
class Member:
    """One speaker: the name, the voice, other names the text calls them by."""

    name: str
    voice: str
    also: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.also)


@dataclass(frozen=True, slots=True)
class Cast:
    """Speakers and per-chapter narrator voices, later entries winning per name."""

    members: tuple[Member, ...] = ()
    chapters: tuple[tuple[str, str], ...] = ()  # (title pattern, voice)
    _index: dict[str, Member] = field(init=False, repr=False, compare=False, default_factory=dict)
    # Every name and alias in one pattern, longest first: one scan of a tag finds them.
    names_pattern: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        latest: dict[str, Member] = {}
        for member in self.members:
            latest.pop(member.name.casefold(), None)
            latest[member.name.casefold()] = member
        members = tuple(latest.values())
        object.__setattr__(self, "members", members)
        index: dict[str, Member] = {}
        for member in members:
            for name in member.names:
                index[name.casefold()] = member
        object.__setattr__(self, "_index", index)
        names = sorted({n for m in members for n in m.names}, key=len, reverse=True)
        alternation = "|".join(regex.escape(n).replace(r"\ ", r"\s+") for n in names)
        object.__setattr__(self, "names_pattern", regex.compile(alternation or "(?!)", regex.I))

    @classmethod
    def load(cls, *paths: str | Path) -> Cast:
        """The casts in ``paths`` combined, later files winning per name."""
        cast = cls()
        for path in paths:
            try:
                with Path(path).open("rb") as file:
                    data = file.read(MAX_BYTES + 1)
                if len(data) > MAX_BYTES:
                    raise CastError(f"cast {path}: larger than {MAX_BYTES // 1024} KiB")
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise CastError(f"cast {path}: cannot be read ({reason})") from exc
            cast = cast.then(cls.parse(text, source=str(path)))
        return cast

    @classmethod
    def parse(cls, text: str, *, source: str = "<cast>") -> Cast:
        """A cast from TOML text; ``source`` names it in errors."""
        if len(text.encode()) > MAX_BYTES:
            raise CastError(f"cast {source}: larger than {MAX_BYTES // 1024} KiB")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CastError(f"cast {source}: not valid TOML: {exc}") from exc
        unknown = set(data) - {"cast", "chapters"}
        if unknown:
            raise CastError(
                f"cast {source}: unknown table {sorted(unknown)[0]!r}; "
                'use [cast] (name = "voice") and [chapters] ("title*" = "voice")'
            )
        table, chapters = data.get("cast", {}), data.get("chapters", {})
        if not isinstance(table, dict) or not isinstance(chapters, dict):
            raise CastError(f"cast {source}: [cast] and [chapters] must be tables")
        if len(table) + len(chapters) > MAX_ENTRIES:
            raise CastError(f"cast {source}: more than {MAX_ENTRIES} entries")
        members = [
            _member(name, value, f"cast {source}: cast.{name}") for name, value in table.items()
        ]
        patterns = []
        for pattern, voice in chapters.items():
            where = f"cast {source}: chapters.{pattern}"
            patterns.append((_name(pattern, where), _voice(voice, where)))
        return cls(tuple(members), tuple(patterns))

    def then(self, other: Cast) -> Cast:
        """This cast with ``other``'s entries after it (winning per name)."""
        return Cast((*self.members, *other.members), (*self.chapters, *other.chapters))

    def lookup(self, name: str) -> Member | None:
        """The member called ``name`` (or by an alias), case-insensitively."""
        return self._index.get(" ".join(name.split()).casefold())

    def chapter_voice(self, title: str) -> str | None:
        """The narrator's voice for a chapter titled ``title``, if a pattern names one
        (the last matching pattern wins)."""
        found = None
        for pattern, voice in self.chapters:
            if fnmatch.fnmatchcase(title.casefold(), pattern.casefold()):
                found = voice
        return found

    def voices(self) -> set[str]:
        return {m.voice for m in self.members} | {v for _, v in self.chapters}

    def revoiced(self, spell: Callable[[str], str]) -> Cast:
        """The same cast with each voice passed through ``spell`` (the service's spelling;
        it raises for an unknown voice)."""
        return Cast(
            tuple(Member(m.name, spell(m.voice), m.also) for m in self.members),
            tuple((p, spell(v)) for p, v in self.chapters),
        )

    def __bool__(self) -> bool:
        return bool(self.members or self.chapters)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CastError(f"{where}: a name must be a non-empty string")
    if len(value) > MAX_NAME or not value.isprintable():
        raise CastError(f"{where}: a name is at most {MAX_NAME} printable characters")
    return " ".join(value.split())


def _voice(value: Any, where: str) -> str:
    if not isinstance(value, str) or not regex.fullmatch(r"[\w.:-]{1,64}", value):
        raise CastError(f"{where}: the voice must be a voice name (see `narrator voices`)")
    return value


def _member(name: str, value: Any, where: str) -> Member:
    name = _name(name, where)
    if isinstance(value, str):
        return Member(name, _voice(value, where))
    if not isinstance(value, dict):
        raise CastError(f'{where}: use name = "voice" or name = {{voice = "...", also = [...]}}')
    unknown = set(value) - {"voice", "also"}
    if unknown:
        raise CastError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: also, voice")
    also = value.get("also", [])
    if isinstance(also, str):
        also = [also]
    if not isinstance(also, list) or len(also) > MAX_ALIASES:
        raise CastError(f"{where}: also must be a list of at most {MAX_ALIASES} names")
    return Member(name, _voice(value.get("voice"), where), tuple(_name(a, where) for a in also))


def local_casts(source: str) -> list[Path]:
    """A document's own casts, in the order they apply: ``cast.toml`` in its folder, then
    ``NAME.cast.toml`` beside it. None for URLs and stdin."""
    if "://" in source or source.startswith("<") or source == "-":
        return []
    path = Path(source)
    candidates = [path.parent / FOLDER_CAST, path.with_name(path.stem + DOCUMENT_SUFFIX)]
    return [c for c in candidates if c.is_file()]


def combined(base: Sequence[Path], document: str, over: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The cast files for ``document``, in order: the settings file's, the document's own,
    then the command line's."""
    return (*base, *local_casts(document), *over)


def document_casting(
    source: str,
    base: Sequence[Path] = (),
    over: Sequence[Path] = (),
    *,
    voice: str,
    dialogue_voice: str = "",
    speaker_lines: bool = False,
    spell: Callable[[str], str] = str,
) -> Casting | None:
    """How a document's voices are given out: its cast files (:func:`combined`), each
    voice passed through ``spell`` (which raises for an unknown one), the dialogue voice
    and speaker lines; None when everything is read in ``voice``."""
    cast = Cast.load(*combined(base, source, over)).revoiced(spell)
    casting = Casting(cast, voice, dialogue_voice, speaker_lines)
    return casting if casting.listens or cast.chapters else None


@dataclass(frozen=True, slots=True)
class Casting:
    """How a run gives voices out: the cast, the narrator's voice, the voice of speech
    nobody could be given, and whether ``NAME:`` paragraphs are speaker lines."""

    cast: Cast = field(default_factory=Cast)
    voice: str = ""
    dialogue_voice: str = ""
    speaker_lines: bool = False

    @property
    def listens(self) -> bool:
        """Whether speech is looked for at all (else the narrator reads everything)."""
        return bool(self.dialogue_voice or self.cast.members or self.speaker_lines)

    def narrator(self, title: str) -> str:
        return self.cast.chapter_voice(title) or self.voice

    def voice_of(self, speaker: str, title: str) -> str:
        """The voice of ``speaker`` (a name, NARRATION or UNATTRIBUTED) in a chapter."""
        if speaker == NARRATION:
            return self.narrator(title)
        member = self.cast.lookup(speaker)
        if member is not None:
            return member.voice
        return self.dialogue_voice or self.narrator(title)

    def role(self, speaker: str) -> str:
        """What a chunk's speaker is keyed by: speech that falls back to the narrator's
        voice is narration, so it shares its chunks."""
        if speaker == NARRATION or self.cast.lookup(speaker) is not None or self.dialogue_voice:
            return speaker
        return NARRATION
