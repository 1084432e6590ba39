"""Words a listener is likely to hear wrong, found before anything is paid for.

``narrator words`` lists, per token: all-caps acronyms (WCAG), digit-bearing tokens
(B2B, COVID-19), mixed-case ones (iOS, McKay), words missing from the word list of the
document's language (pyspellchecker's frequency lists, MIT; en, de, es, fr, it, pt, nl,
ru, ar, fa, lv, eu; other languages skip this check) and symbols a voice may skip or
misread (& % § ° ±). Each comes with its count, the first place it occurs and whether
the lexicon already covers it; :func:`skeleton` turns the list into a lexicon to edit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..inputs.documents import Document
from ..util.sanitize import shown
from .bounds import Budget
from .lexicon import Lexicon

__all__ = ["KINDS", "Word", "find_words", "skeleton"]

KINDS = ("acronym", "digits", "mixed case", "unknown", "symbol")
SYMBOLS = "&%§°±"
# A word: letters and digits, joined by inner hyphens or apostrophes ("COVID-19", "don't").
_TOKEN = re.compile(r"[^\W_](?:\w|[-'’](?=[^\W_]))*")
_SYMBOL = re.compile(f"[{re.escape(SYMBOLS)}]")


@dataclass(frozen=True, slots=True)
class Word:
    """A token that may be misread: ``first`` names where it first occurs;
    ``covered`` is ``yes``, ``partly`` (some occurrences) or ``no``."""

    text: str
    kind: str
    count: int
    first: str
    covered: str


_CLITIC = re.compile(r"(n['’]t|['’](s|ll|ve|re|d|m))$")
_AMERICAN = {"our": "or", "tre": "ter", "ise": "ize", "ised": "ized"}
_BRITISH = re.compile(r"(our|tre|ised?)(?=s?$)")
_ENDINGS = (
    ("s", ""), ("es", ""), ("ies", "y"), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"),
    ("er", ""), ("est", ""), ("ly", ""),
)  # fmt: skip


@lru_cache(maxsize=8)
def _word_list(lang: str) -> Callable[[str], bool] | None:
    """Whether a lowercase word is known in ``lang``; None when there is no list."""
    from spellchecker import SpellChecker  # loads a frequency list: only when asked

    code = lang.lower().replace("_", "-").partition("-")[0]
    if code not in SpellChecker.languages():
        return None
    words = SpellChecker(language=code, case_sensitive=False, distance=1)
    if code != "en":
        return words.__contains__

    def known(word: str) -> bool:
        # The list is American and has few inflected forms ("apps"): try a clitic or an
        # ending off (an e back on), and the American spelling of "metres", "harbour".
        word = _CLITIC.sub("", word)
        forms = {word, _BRITISH.sub(lambda m: _AMERICAN[m.group()], word)}
        for form in list(forms):
            for ending, base in _ENDINGS:
                if form.endswith(ending) and len(form) > len(ending) + 2:
                    forms.add(form[: -len(ending)] + base)
        return any(form in words for form in forms)

    return known


def kind_of(token: str, known: Callable[[str], bool] | None) -> str | None:
    """Why ``token`` may be misread, or None."""
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return None  # a number: voices read those
    if any(c.isdigit() for c in token):
        return "digits"
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return "acronym"
    if any(c.isupper() for c in token[1:]):
        return "mixed case"
    if known is None:
        return None
    parts = [p for p in token.lower().split("-") if p]
    return "unknown" if any(not known(p) for p in parts) else None


def find_words(
    documents: Sequence[tuple[Document, str, Lexicon]],
    *,
    voice: str = "",
    many: bool = False,
) -> list[Word]:
    """The likely-misread words of ``documents`` (each with its language and lexicon),
    most frequent first within each kind. ``many``: name the document in ``first``."""
    counts: dict[tuple[str, str], list[int]] = {}  # (text, kind) -> [count, covered]
    firsts: dict[tuple[str, str], str] = {}
    for doc, lang, lexicon in documents:
        known = _word_list(lang)
        size = sum(len(p) for c in doc.chapters for p in (c.title or "", *c.paragraphs))
        budget = Budget.for_text(size)  # one per document, as a run has
        for chapter in doc.chapters:
            texts = [chapter.title or "", *chapter.paragraphs]
            for n, text in enumerate(texts):
                if not text:
                    continue
                spans = lexicon.matches(text, lang, voice, budget)
                place = f"ch {chapter.index + 1} " + (f"¶ {n}" if n else "title")
                if many:
                    place = f"{doc.source}: {place}"
                found = [(m, kind_of(m.group(), known)) for m in _TOKEN.finditer(text)]
                found += [(m, "symbol") for m in _SYMBOL.finditer(text)]
                for match, kind in found:
                    if kind is None:
                        continue
                    key = (match.group(), kind)
                    covered = any(s < match.end() and match.start() < e for s, e, _ in spans)
                    entry = counts.setdefault(key, [0, 0])
                    entry[0] += 1
                    entry[1] += covered
                    firsts.setdefault(key, place)
    words = [
        Word(text, kind, n, firsts[(text, kind)], _coverage(n, hit))
        for (text, kind), (n, hit) in counts.items()
    ]
    return sorted(words, key=lambda w: (KINDS.index(w.kind), -w.count, w.text))


def _coverage(count: int, covered: int) -> str:
    return "yes" if covered == count else "partly" if covered else "no"


def skeleton(words: Sequence[Word]) -> str:
    """A lexicon to edit: every word not yet covered, said as written for now."""
    lines = [
        "# Pronunciation lexicon made by `narrator words`: write how each term is said",
        '# (e.g. WCAG = "W C A G"), delete the lines that are fine, and pass the file',
        "# with --lexicon. See docs/formats.md (Pronunciation) for the full format.",
        "",
        "[words]",
    ]
    for word in words:
        if word.covered == "yes":
            continue
        text = json.dumps(word.text, ensure_ascii=False)
        # A comment stays one line whatever the file name holds (shown: no line break).
        lines.append(f"{text} = {text}  # {word.kind}, {word.count}x, first {shown(word.first)}")
    return "\n".join(lines) + "\n"
