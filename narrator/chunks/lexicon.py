"""A pronunciation lexicon: respellings applied to the text before it is split and sent.

An LLM voice takes plain text only (no SSML, no phonemes), so the portable fix for a
mangled name is a respelling (``WCAG`` -> ``W C A G``). A lexicon is a TOML file::

    [words]                      # the simple form: term = "spoken form"
    WCAG = "W C A G"

    [[entry]]                    # the full form, one table per entry
    term = "St."
    say = "Saint"
    whole_word = true            # default: the term is not part of a longer word
    case_sensitive = false       # default: true when a letter after the first is a capital
    regex = false                # term is a Python regular expression; say may use \\1
    lang = ["en"]                # only in documents of these languages (default: all)
    voice = ["Cherry"]           # only with these voices (default: all)

Several lexicons combine in order, a later entry replacing an earlier one with the same
``term`` and scope (``lang``, ``voice``); where two entries match the same text, the
later wins. Where matches overlap, the longest wins (then the earlier one in the text), so
the result does not depend on the order of the entries. Only spoken text goes through it:
the splitter keeps the written text beside each chunk for subtitles, and chapter titles
in tags are the document's own.

A lexicon is data, never authority (it may be found beside a document, in a shared
inbox): it only respells, and what respelling one document may cost is bounded by a
:class:`Budget`: the time its regular expressions may take (the ``regex`` package's
``timeout``, so ``(a|aa)+$`` cannot hang a run) and the size the spoken text may grow to
(``--max-text-mb``); see :mod:`.bounds`. Over either, the document fails with an
:class:`InputError` that says why; the other documents go on.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from ..errors import LexiconError
from .bounds import Budget, finditer

__all__ = [
    "LOCAL_NAMES", "MAX_BYTES", "Entry", "Lexicon", "LexiconError", "Respelled", "combined",
    "document_lexicon", "local_lexicons",
]  # fmt: skip

# The regex package ships no type hints.
_Pattern = Any
# The largest lexicon file read (a found one is data: README "Security"). A
# pronunciation dictionary of 100,000 entries is about 3 MiB.
MAX_BYTES = 8 * 2**20
# A document's own lexicons, found beside it: one for its folder, one for itself.
FOLDER_LEXICON = "lexicon.toml"
DOCUMENT_SUFFIX = ".lexicon.toml"
LOCAL_NAMES = (FOLDER_LEXICON, f"NAME{DOCUMENT_SUFFIX}")

_KEYS = frozenset({"term", "say", "whole_word", "case_sensitive", "regex", "lang", "voice"})
# Scripts written without spaces: a word boundary there cannot be seen, so not checked.
_UNSPACED = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}]")


@dataclass(frozen=True, slots=True)
class Entry:
    """One respelling. ``where`` names it in errors (file and entry)."""

    term: str
    say: str
    whole_word: bool = True
    case_sensitive: bool | None = None  # None: true when a later letter is a capital
    regex: bool = False
    lang: tuple[str, ...] = ()
    voice: tuple[str, ...] = ()
    where: str = ""

    @property
    def identity(self) -> tuple[str, frozenset[str], frozenset[str]]:
        """What a later entry must share to replace this one: the term and the scope."""
        return (
            self.term,
            frozenset(_primary(x) for x in self.lang),
            frozenset(v.casefold() for v in self.voice),
        )

    def applies(self, lang: str, voice: str) -> bool:
        """Whether the entry is in scope for a document's language and the voice."""
        if self.lang and _primary(lang) not in {_primary(x) for x in self.lang}:
            return False
        return not self.voice or voice.casefold() in {v.casefold() for v in self.voice}

    def compile(self) -> _Pattern:
        """The entry's pattern; :class:`LexiconError` for a bad one."""
        sensitive = self.case_sensitive
        if sensitive is None:
            sensitive = not self.regex and any(c.isupper() for c in self.term[1:])
        body = self.term if self.regex else re.escape(self.term)
        if self.whole_word and self.regex:
            body = r"(?<!\w)(?:" + body + r")(?!\w)"
        elif self.whole_word:
            if _wordy(self.term[:1]):
                body = r"(?<!\w)" + body
            if _wordy(self.term[-1:]):
                body += r"(?!\w)"
        try:
            if self.regex:
                regex.compile(self.term)  # its own error positions, before the boundaries
            pattern = regex.compile(body, 0 if sensitive else regex.IGNORECASE)
            # regex compiles a replacement at its first match: make one, so a bad \\1
            # shows now, not in the middle of a book.
            regex.compile(f"(?:{body})|", pattern.flags).sub(self.say, "")
        except regex.error as exc:
            raise LexiconError(f"{self.where}: {exc}; fix the pattern or its say") from exc
        if pattern.search("") is not None:
            raise LexiconError(f"{self.where}: the pattern matches empty text; make it longer")
        return pattern


def _wordy(char: str) -> bool:
    return bool(re.match(r"\w", char)) and not _UNSPACED.match(char)


def _primary(lang: str) -> str:
    return lang.strip().lower().replace("_", "-").partition("-")[0]


@dataclass(frozen=True, slots=True)
class Respelled:
    """A text after the lexicon: what is said, what was written, and where they meet.

    ``spans`` are (spoken start, spoken end, written start, written end) of each
    replacement, in order.
    """

    spoken: str
    written: str
    spans: tuple[tuple[int, int, int, int], ...] = ()
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(s[0] for s in self.spans))

    def written_at(self, offset: int) -> int:
        """The written offset of a spoken one; inside a respelling, the written word's end
        (a respelling is never shown cut in two)."""
        n = bisect.bisect_right(self._starts, offset) - 1
        if n < 0:
            return offset
        s_start, s_end, w_start, w_end = self.spans[n]
        if offset == s_start:
            return w_start
        if offset < s_end:
            return w_end
        return w_end + offset - s_end

    def written_slice(self, start: int, end: int) -> str:
        return self.written[self.written_at(start) : self.written_at(end)]


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Respellings, in the order they were given (later ones win per term).

    Build with :meth:`load` (files) or :meth:`parse` (TOML text); apply with
    :meth:`apply`. An empty lexicon changes nothing.
    """

    entries: tuple[Entry, ...] = ()
    _patterns: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # A later entry with the same term and scope replaces the earlier one.
        latest: dict[tuple[str, frozenset[str], frozenset[str]], Entry] = {}
        for entry in self.entries:
            latest.pop(entry.identity, None)
            latest[entry.identity] = entry
        entries = tuple(latest.values())
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "_patterns", tuple(e.compile() for e in entries))

    @classmethod
    def load(cls, *paths: str | Path) -> Lexicon:
        """The lexicons in ``paths`` combined, later files winning per term.

        Raises :class:`LexiconError` naming the file and line (bad TOML) or entry.
        """
        entries: list[Entry] = []
        for path in paths:
            try:
                # Read no more than the bound: a found lexicon is data, and a 1 GB one
                # must cost a read of 8 MiB, not the machine's memory.
                with open(path, "rb") as file:
                    data = file.read(MAX_BYTES + 1)
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise LexiconError(f"lexicon {path}: cannot be read ({reason})") from exc
            if len(data) > MAX_BYTES:
                raise LexiconError(
                    f"lexicon {path}: larger than {MAX_BYTES // 2**20} MiB; split it, or "
                    "keep only the words your documents use"
                )
            entries += cls.parse(text, source=str(path)).entries
        return cls(tuple(entries))

    @classmethod
    def parse(cls, text: str, *, source: str = "<lexicon>") -> Lexicon:
        """A lexicon from TOML text; ``source`` names it in errors."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
            raise LexiconError(f"lexicon {source}: not valid TOML: {exc}") from exc
        unknown = set(data) - {"words", "entry"}
        if unknown:
            raise LexiconError(
                f"lexicon {source}: unknown table {sorted(unknown)[0]!r}; "
                'use [words] (term = "say") or [[entry]]'
            )
        entries: list[Entry] = []
        words = data.get("words", {})
        if not isinstance(words, dict):
            raise LexiconError(f'lexicon {source}: words must be a table of term = "say"')
        for term, say in words.items():
            where = f"lexicon {source}: words.{_quote(term)}"
            entries.append(_entry({"term": term, "say": say}, where))
        tables = data.get("entry", [])
        if not isinstance(tables, list):
            raise LexiconError(f"lexicon {source}: entry must be an array of tables ([[entry]])")
        for n, table in enumerate(tables, 1):
            name = table.get("term") if isinstance(table, dict) else None
            label = f" ({_quote(name)})" if isinstance(name, str) else ""
            entries.append(_entry(table, f"lexicon {source}: entry {n}{label}"))
        return cls(tuple(entries))

    def then(self, other: Lexicon) -> Lexicon:
        """This lexicon with ``other``'s entries after it (winning per term)."""
        return Lexicon((*self.entries, *other.entries)) if other.entries else self

    def matches(
        self, text: str, lang: str = "", voice: str = "", budget: Budget | None = None
    ) -> list[tuple[int, int, str]]:
        """The replacements in ``text``: (start, end, spoken form), in order, none
        overlapping; where candidates overlap the longest wins, then the earliest.
        ``budget`` bounds the time and the spoken size (default: a fresh one)."""
        budget = budget or Budget()
        room = budget.max_chars - budget.spoken  # candidates' spoken forms, at most
        found: list[tuple[int, int, int, str]] = []
        folded = text.casefold()
        for order, (entry, pattern) in enumerate(zip(self.entries, self._patterns, strict=True)):
            if not entry.applies(lang, voice):
                continue
            # A plain term absent from the text needs no regex scan (most terms, most text).
            if not entry.regex and entry.term.casefold() not in folded:
                continue
            for m in finditer(pattern, text, budget, bounded=entry.regex, where=entry.where):
                if m.end() > m.start():
                    say = _spaces(m.expand(entry.say)) if entry.regex else entry.say
                    found.append((m.start(), m.end(), -order, say))
                    room -= len(say)
                    if room < 0:
                        budget.grow(budget.max_chars, entry.where)
        found.sort(key=lambda f: (f[0] - f[1], f[0], f[2]))
        taken: list[tuple[int, int, str]] = []
        starts: list[int] = []
        for start, end, _, say in found:
            n = bisect.bisect_left(starts, start)
            if n > 0 and taken[n - 1][1] > start:
                continue
            if n < len(taken) and taken[n][0] < end:
                continue
            starts.insert(n, start)
            taken.insert(n, (start, end, say))
        return taken

    def respell(
        self, text: str, lang: str = "", voice: str = "", budget: Budget | None = None
    ) -> Respelled:
        """``text`` with every replacement made, and the way back to the written text;
        ``budget``: see :meth:`matches` (one per document, passed to each paragraph)."""
        if not self.entries:
            return Respelled(text, text)
        budget = budget or Budget()
        parts: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        pos = out = 0
        for start, end, say in self.matches(text, lang, voice, budget):
            parts.append(text[pos:start])
            out += start - pos
            parts.append(say)
            spans.append((out, out + len(say), start, end))
            out += len(say)
            pos = end
        parts.append(text[pos:])
        budget.grow(out + len(text) - pos, "lexicon")
        return Respelled("".join(parts), text, tuple(spans))

    def apply(self, text: str, lang: str = "", voice: str = "") -> str:
        """``text`` as it is to be spoken, for a document in ``lang`` read by ``voice``."""
        return self.respell(text, lang, voice).spoken


def _quote(term: str) -> str:
    return term if re.fullmatch(r"[A-Za-z0-9_-]+", term) else f'"{term}"'


def _spaces(text: str) -> str:
    return " ".join(text.split())


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise LexiconError(f"{where}: {key} must be a name or a list of names")
    return tuple(i.strip() for i in items)


def _entry(table: Any, where: str) -> Entry:
    if not isinstance(table, dict):
        raise LexiconError(f"{where}: must be a table with term and say")
    unknown = set(table) - _KEYS
    if unknown:
        raise LexiconError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_KEYS))}"
        )
    term, say = table.get("term"), table.get("say")
    if not isinstance(term, str) or not term.strip():
        raise LexiconError(f"{where}: term must be a non-empty string")
    if not isinstance(say, str) or not say.strip():
        raise LexiconError(f"{where}: say must be a non-empty string (the spoken form)")
    flags = {}
    for key in ("whole_word", "case_sensitive", "regex"):
        if key in table:
            if not isinstance(table[key], bool):
                raise LexiconError(f"{where}: {key} must be true or false")
            flags[key] = table[key]
    return Entry(
        term=term if flags.get("regex") else term.strip(),
        say=_spaces(say),
        lang=_strings(table["lang"], "lang", where) if "lang" in table else (),
        voice=_strings(table["voice"], "voice", where) if "voice" in table else (),
        where=where,
        **flags,
    )


def local_lexicons(source: str) -> list[Path]:
    """A document's own lexicons, in the order they apply: ``lexicon.toml`` in its folder,
    then ``NAME.lexicon.toml`` beside it (for ``NAME.md``). None for URLs and stdin."""
    if "://" in source or source.startswith("<") or source == "-":
        return []
    path = Path(source)
    candidates = [path.parent / FOLDER_LEXICON, path.with_name(path.stem + DOCUMENT_SUFFIX)]
    return [c for c in candidates if c.is_file()]


def document_lexicon(source: str, base: Sequence[Path] = (), over: Sequence[Path] = ()) -> Lexicon:
    """The lexicon a document is read with: :func:`combined`'s files, loaded."""
    return Lexicon.load(*combined(base, source, over))


def combined(base: Sequence[Path], document: str, over: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The lexicon files for ``document``, in order: ``base`` (the settings file's), the
    document's own (:func:`local_lexicons`), then ``over`` (the command line's)."""
    return (*base, *local_lexicons(document), *over)
