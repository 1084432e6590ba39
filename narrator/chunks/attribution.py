"""Who says each quotation: speech tags, turn-taking, speaker lines.

:func:`cast_chapter` gives each paragraph of a chapter its :class:`Line` s: narration,
speech given to a speaker by a speech tag ("said Alice", "Alice asked", "Alice said:",
爱丽丝说, "sagte Anna"), by turn-taking within a two-person exchange (untagged turns
alternate with the tagged ones), by a speaker line (``ANNA: ...`` with
``speaker_lines``), or left unattributed. With a cast, only its names (and aliases)
are speakers; without one (``narrator cast`` starting a cast), a tag's name is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regex

from .bounds import Budget
from .cast import NARRATION, UNATTRIBUTED, Cast, Casting, Member
from .dialogue import SPEECH_VERBS, Span, find_speech, primary
from .lexicon import Lexicon, Respelled

__all__ = ["Line", "cast_chapter", "voiced_runs"]


@dataclass(frozen=True, slots=True)
class Line:
    """A run of a paragraph: ``[start, end)``, who says it, and how that was found
    (``tag``, ``turn``, ``line``, ``""``). ``silent`` runs (a speaker line's name) are
    shown but not read."""

    start: int
    end: int
    speaker: str
    how: str = ""
    silent: bool = False
    continued: bool = False  # carries on a quotation from the paragraph before


_PRONOUNS = frozenset(
    (
        "he she they it i we you his her him them this that then there the a an and but "
        "er sie es ich wir du ihr il elle on ils elles je tu nous vous él ella ellos usted "
        "он она они я мы ты вы оно"
    ).split()
)
_HAN_PRONOUNS = frozenset("他 她 它 我 你 他们 她们 我们 你们 大家 有人".split())
_NAME = r"\p{Lu}[\p{L}’'.-]*(?:\s+\p{Lu}[\p{L}’'-]*){0,2}"
# A sentence's end, but not an abbreviation's full stop ("said Mr. Smith").
_SENTENCE_END = regex.compile(r"(?<!\b(?:Mr|Mrs|Ms|Dr|St|Prof|Mme|Mlle|Hr|Fr))[.!?。！？…]")
_TRAILING = frozenset(",;:.!?，。！？、")
_LINE_NAME = regex.compile(r"^\s*(\p{L}[\p{L}\p{N} .’'-]{0,40}?)\s*[:：]\s*(?=\S)")


@dataclass(frozen=True, slots=True)
class _Tagger:
    lang: str
    after: Any  # "said Alice" / "Alice said" after a quotation
    cjk: bool

    @classmethod
    def make(cls, lang: str) -> _Tagger:
        code = primary(lang)
        verbs = SPEECH_VERBS.get(code, SPEECH_VERBS["en"])
        alternation = "|".join(regex.escape(v) for v in sorted(verbs, key=len, reverse=True))
        if code in ("zh", "ja"):
            pattern = regex.compile(
                rf"(?:^|(?<=[，。！？、：；”」』\s]))(\p{{Han}}{{1,4}}?)(?:{alternation})"
            )
            return cls(code, pattern, True)
        pattern = regex.compile(
            rf"(?:\b(?:{alternation})\b[\s,]+(?P<a>{_NAME})|(?P<b>{_NAME})\s+(?:\p{{Ll}}+ly\s+)?"
            rf"(?:{alternation})\b)",
        )
        return cls(code, pattern, False)

    def has_verb(self, text: str) -> bool:
        verbs = SPEECH_VERBS.get(self.lang, SPEECH_VERBS["en"])
        if self.cjk:
            return any(v in text for v in verbs)
        words = {w.casefold() for w in regex.findall(r"[\w’'-]+", text)}
        return any(v in words for v in verbs)

    def names(self, text: str) -> list[str]:
        """Candidate speaker names a tag in ``text`` gives, in order."""
        found = []
        for m in self.after.finditer(text):
            name = m.group(1) if self.cjk else (m.group("a") or m.group("b"))
            name = name.strip(" .,")
            if self.cjk and name in _HAN_PRONOUNS:
                continue
            if not self.cjk and name.split()[0].casefold() in _PRONOUNS:
                continue
            found.append(name)
        return found


def _tag(text: str, tagger: _Tagger, cast: Cast, before: bool) -> str | None:
    """The speaker a tag in the narration ``text`` names, if any: a cast member when there
    is a cast, else a name the text gives."""
    if before:
        text = _SENTENCE_END.split(text)[-1]  # the last sentence before the quotation
    else:
        m = _SENTENCE_END.search(text)
        text = text[: m.end()] if m else text  # the first one after it
    if not text.strip():
        return None
    candidates = tagger.names(text)
    if cast.members:
        for name in candidates:
            member = cast.lookup(name) or _within(name, cast, tagger.cjk)
            if member is not None:
                return member.name
        colon = before and text.rstrip().endswith((":", "：", ","))
        if colon or tagger.has_verb(text):
            member = _within(text, cast, tagger.cjk)
            if member is not None:
                return member.name
        return None
    if candidates:
        return candidates[0]
    if before and text.rstrip().endswith((":", "：")):
        words = text.rstrip(" :：").split()
        if words and words[-1][:1].isupper() and words[-1].casefold() not in _PRONOUNS:
            return words[-1]
    return None


def _within(text: str, cast: Cast, cjk: bool) -> Member | None:
    """The cast member whose name (or alias) appears first in ``text`` (a whole word,
    except in scripts without spaces)."""
    for m in cast.names_pattern.finditer(text, overlapped=True):
        end = m.end()
        whole = cjk or (
            (m.start() == 0 or not text[m.start() - 1].isalnum())
            and (end == len(text) or not text[end].isalnum())
        )
        if whole:
            return cast.lookup(m.group())
    return None


def _speaker_line(para: str, cast: Cast) -> tuple[int, str] | None:
    """A ``NAME: text`` paragraph: where its words start, and who says them (a cast
    member, or a name in capitals such as ANNA or Q)."""
    m = _LINE_NAME.match(para)
    if m is None:
        return None
    name = m.group(1).strip()
    member = cast.lookup(name)
    if member is not None:
        return m.end(), member.name
    letters = [c for c in name if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(name.split()) <= 3:
        return m.end(), name
    return None


def cast_chapter(
    paragraphs: Sequence[str], lang: str, casting: Casting
) -> tuple[list[list[Line]], list[str]]:
    """Each paragraph's lines (covering it, in order) and the chapter's warnings."""
    cast = casting.cast
    tagger = _Tagger.make(lang)
    lines_of: list[list[Line] | None] = [None] * len(paragraphs)
    prose = list(paragraphs)
    if casting.speaker_lines:
        for n, para in enumerate(paragraphs):
            found = _speaker_line(para, cast)
            if found is not None:
                at, who = found
                lines_of[n] = [
                    Line(0, at, who, "line", silent=True),
                    Line(at, len(para), who, "line"),
                ]
                prose[n] = ""  # not searched for quotations
    speech = find_speech(prose, lang)
    # Turns: the speech of one speaker, over paragraphs when a quotation carries on.
    turns: list[list[int]] = []
    named: list[str | None] = []
    tags: dict[tuple[int, int], str] = {}  # (paragraph, span) -> a tag's speaker
    for n, spans in enumerate(speech.spans):
        if not spans:
            continue
        para = paragraphs[n]
        for k, span in enumerate(spans):
            after_end = spans[k + 1].start if k + 1 < len(spans) else len(para)
            before_start = spans[k - 1].end if k else 0
            name: str | None = _tag(para[span.end : after_end], tagger, cast, before=False)
            if name is None:
                name = _tag(para[before_start : span.start], tagger, cast, before=True)
            if name is not None:
                tags[(n, k)] = name
        if spans[0].continued and turns and turns[-1][-1] == n - 1:
            turns[-1].append(n)
        else:
            turns.append([n])
            named.append(None)
        for k in range(len(spans)):
            if named[-1] is None and (n, k) in tags:
                named[-1] = tags[(n, k)]
    how = ["tag" if name is not None else "" for name in named]
    _take_turns(turns, named, how)
    warnings = list(speech.warnings)
    for t, paras in enumerate(turns):
        for n in paras:
            spans = speech.spans[n]
            speaker = named[t]
            own: list[tuple[Span, str, str]] = []
            for k, span in enumerate(spans):
                tagged = tags.get((n, k))
                if tagged is not None:
                    speaker = tagged
                who = speaker or UNATTRIBUTED
                way = "tag" if tagged is not None else (how[t] if speaker else "")
                own.append((span, who, way))
            lines_of[n] = _lines(paragraphs[n], own)
    out = [
        lines if lines is not None else [Line(0, len(para), NARRATION)]
        for lines, para in zip(lines_of, paragraphs, strict=True)
    ]
    return out, warnings


def _take_turns(turns: list[list[int]], named: list[str | None], how: list[str]) -> None:
    """Untagged turns of a two-person exchange alternate with the tagged ones."""
    start = 0
    while start < len(turns):
        end = start + 1
        while end < len(turns) and turns[end][0] == turns[end - 1][-1] + 1:
            end += 1
        speakers = {named[t] for t in range(start, end)} - {None}
        if len(speakers) == 2:
            pair = sorted(speakers, key=str)
            tagged = [t for t in range(start, end) if how[t] == "tag"]
            for t in range(start, end):
                if named[t] is not None:
                    continue
                earlier = [s for s in tagged if s < t]
                anchor = earlier[-1] if earlier else next(s for s in tagged if s > t)
                who = named[anchor]
                if (t - anchor) % 2:
                    who = pair[1] if who == pair[0] else pair[0]
                named[t], how[t] = who, "turn"
        start = end


def _lines(para: str, speech: list[tuple[Span, str, str]]) -> list[Line]:
    """The paragraph cut into narration and speech lines; a run without a letter or digit
    (a stray comma between two quotations) joins the line before it."""
    raw: list[Line] = []
    pos = 0
    for span, who, way in speech:
        if span.start > pos:
            raw.append(Line(pos, span.start, NARRATION))
        raw.append(Line(span.start, span.end, who, way, continued=span.continued))
        pos = span.end
    if pos < len(para):
        raw.append(Line(pos, len(para), NARRATION))
    for n in range(len(raw) - 1):
        # „Komm her“, sagte Anna: the comma ends the quotation, it does not start the tag
        this, after = raw[n], raw[n + 1]
        if this.speaker != NARRATION and after.speaker == NARRATION:
            cut = after.start
            while cut < after.end and para[cut] in _TRAILING:
                cut += 1
            raw[n] = Line(this.start, cut, this.speaker, this.how, continued=this.continued)
            raw[n + 1] = Line(cut, after.end, NARRATION)
    out: list[Line] = []
    for line in raw:
        wordless = not any(c.isalnum() for c in para[line.start : line.end])
        if out and (wordless or out[-1].speaker == line.speaker):
            prev = out[-1]
            out[-1] = Line(prev.start, line.end, prev.speaker, prev.how, continued=prev.continued)
        elif out and not any(c.isalnum() for c in para[out[-1].start : out[-1].end]):
            prev = out[-1]
            out[-1] = Line(prev.start, line.end, line.speaker, line.how, continued=line.continued)
        else:
            out.append(line)
    return out


def voiced_runs(
    para: str,
    lines: Sequence[Line],
    lexicon: Lexicon | None,
    lang: str,
    casting: Casting,
    title: str,
    budget: Budget | None = None,
) -> tuple[Respelled, list[tuple[int, int, str, str]]]:
    """A paragraph as it is spoken: each line respelled for its own voice (a speaker
    line's name shown, not read; within the document's respelling ``budget``), and its
    runs (spoken start, end, speaker, voice), a speaker's adjacent lines joined."""
    parts: list[str] = []
    spans: list[tuple[int, int, int, int]] = []
    runs: list[tuple[int, int, str, str]] = []
    out = 0
    for line in lines:
        text = para[line.start : line.end]
        if line.silent:
            spans.append((out, out, line.start, line.end))
            continue
        speaker = casting.role(line.speaker)
        voice = casting.voice_of(line.speaker, title)
        if lexicon is not None:
            respelled = lexicon.respell(text, lang, voice, budget)
            spans += [
                (out + a, out + b, line.start + c, line.start + d) for a, b, c, d in respelled.spans
            ]
            text = respelled.spoken
        if runs and runs[-1][2:] == (speaker, voice):
            runs[-1] = (runs[-1][0], out + len(text), speaker, voice)
        else:
            runs.append((out, out + len(text), speaker, voice))
        parts.append(text)
        out += len(text)
    return Respelled("".join(parts), para, tuple(spans)), runs
