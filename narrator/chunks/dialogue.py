"""Quoted speech: where, in a chapter's paragraphs, someone speaks.

:func:`find_speech` takes a chapter's paragraphs (each on one line, as the splitter
normalizes them) and the document's language, and gives each paragraph its speech
spans. The marks it knows, by language:

- English: “…”, "…" and ‘…’ (an apostrophe is not a quote: don't, rock 'n' roll,
  the '90s, the boys' boat; a single-quoted span must hold a space or end in
  punctuation);
- German: „…“ „…” »…« (and “…”); French « … » (and “…”); Russian «…» „…“;
- Chinese and Japanese: 「…」『…』“…”;
- Spanish, French, Russian (and Italian, Portuguese): a dialogue dash opening a
  paragraph (— Oui, dit-il.); later dashes in it switch between speech and narration
  ("—Sí —dijo él—. Vamos."), and a French incise (", dit-il,") is narration.

A quotation that runs over paragraphs (an opening mark at each, the closing one only
at the last) stays speech. A mark that never closes ends at its paragraph's end: it
cannot turn the rest of a chapter into speech; each one is reported in
:attr:`Speech.warnings`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

__all__ = ["SPEECH_VERBS", "Span", "Speech", "find_speech", "primary"]

# Opening mark -> closing marks, per language (the primary subtag).
_ENGLISH = {"“": "”", '"': '"', "‘": "’", "'": "'"}
_PAIRS: dict[str, dict[str, str]] = {
    "en": _ENGLISH,
    "de": {"„": "“”", "»": "«", "“": "”", '"': '"', "‚": "‘’"},
    "fr": {"«": "»", "“": "”", '"': '"'},
    "ru": {"«": "»", "„": "“", '"': '"'},
    "es": {"«": "»", "“": "”", '"': '"'},
    "it": {"«": "»", "“": "”", '"': '"'},
    "pt": {"«": "»", "“": "”", '"': '"'},
    "zh": {"「": "」", "『": "』", "“": "”", "《": ""},
    "ja": {"「": "」", "『": "』", "“": "”"},
}
_DEFAULT = {"“": "”", '"': '"', "«": "»", "「": "」", "『": "』"}
_DASH_LANGS = frozenset({"es", "fr", "ru", "it", "pt", "uk", "bg", "pl"})
_DASHES = "—―–"
# Words that start with an apostrophe (elisions), not a quotation.
_ELISIONS = regex.compile(
    r"(?i)(?:n|em|tis|twas|cause|cos|til|bout|round|im|er|ere|twere|s|d|ll|re|ve)\b"
)
_SINGLE = frozenset("'‘‚")
# A single-quoted span must look like speech: a space in it or punctuation at its end.
_SPEECHY_END = frozenset(",.!?…;:—-")

# Speech verbs, per language: a tag is such a verb next to a name or a pronoun.
SPEECH_VERBS: dict[str, list[str]] = {
    "en": (
        "said says asked asks replied replies answered answers cried cries shouted shouts "
        "whispered whispers muttered mutters called calls added adds continued exclaimed "
        "murmured yelled began insisted repeated snapped laughed sighed told agreed "
        "admitted protested suggested wondered demanded declared explained"
    ).split(),
    "de": (
        "sagte sagt fragte fragt antwortete antwortet rief ruft flüsterte meinte erwiderte "
        "murmelte schrie entgegnete fügte fuhr erklärte lachte seufzte"
    ).split(),
    "fr": (
        "dit demanda répondit cria murmura ajouta reprit s'écria s’écria souffla fit lança "
        "répliqua continua déclara chuchota dis demande répond"
    ).split(),
    "es": (
        "dijo preguntó respondió contestó gritó susurró añadió exclamó murmuró replicó continuó"
    ).split(),
    "ru": (
        "сказал сказала спросил спросила ответил ответила крикнул крикнула прошептал "
        "прошептала добавил добавила воскликнул воскликнула произнёс произнесла"
    ).split(),
    "zh": "说道 问道 答道 喊道 叫道 回答 说 问 道 答 喊".split(),
    "ja": "と言った と聞いた と答えた と叫んだ 言った".split(),
}


def primary(lang: str) -> str:
    """``en`` for ``en-US``."""
    return lang.strip().lower().replace("_", "-").partition("-")[0]


@dataclass(frozen=True, slots=True)
class Span:
    """Speech in a paragraph: ``[start, end)``; ``continued`` when it carries on a
    quotation opened in an earlier paragraph."""

    start: int
    end: int
    continued: bool = False


@dataclass(frozen=True, slots=True)
class Speech:
    """A chapter's speech: per paragraph its spans, in order; and what looked wrong."""

    spans: tuple[tuple[Span, ...], ...]
    warnings: tuple[str, ...] = field(default=())


def find_speech(paragraphs: Sequence[str], lang: str) -> Speech:
    """The speech spans of each paragraph (one line each), for a document in ``lang``."""
    code = primary(lang)
    pairs = _PAIRS.get(code, _DEFAULT)
    dashes = code in _DASH_LANGS
    out: list[tuple[Span, ...]] = []
    warnings: list[str] = []
    carry: str | None = None  # the closing marks of a quotation still open
    for n, para in enumerate(paragraphs):
        if dashes and para[:1] in _DASHES and carry is None:
            out.append(tuple(_dash_speech(para, code)))
            continue
        spans, carry, unclosed = _quoted(para, pairs, carry, paragraphs, n)
        if unclosed is not None:
            warnings.append(
                f"paragraph {n + 1}: a quotation mark {unclosed!r} is never closed; "
                "read as speech to the end of its paragraph only"
            )
        if code == "fr":
            spans = [piece for s in spans for piece in _incises(para, s, code)]
        out.append(tuple(spans))
    return Speech(tuple(out), tuple(warnings))


def _quoted(
    para: str,
    pairs: dict[str, str],
    carry: str | None,
    paragraphs: Sequence[str],
    n: int,
) -> tuple[list[Span], str | None, str | None]:
    """Spans of one paragraph; the marks still open at its end when the next paragraph
    carries the quotation on; the opening mark left unclosed, if one is."""
    spans: list[Span] = []
    i = 0
    start = -1
    closers = ""
    opener = ""
    continued = False
    if carry is not None:
        # A carried quotation: this paragraph starts with an opening mark again.
        start, closers, continued = 0, carry, True
        opener = next((o for o, c in pairs.items() if c == carry), "")
        i = 1
    length = len(para)
    while i < length:
        ch = para[i]
        if start < 0:
            if ch in pairs and _opens(para, i, ch):
                start, closers, opener = i, pairs[ch], ch
        elif ch in closers and _closes(para, i, ch, opener, start):
            spans.append(Span(start, i + 1, continued))
            start, continued = -1, False
        i += 1
    if start < 0:
        return spans, None, None
    spans.append(Span(start, length, continued))
    following = paragraphs[n + 1] if n + 1 < len(paragraphs) else ""
    head = following[:1]
    if head == opener or (head in pairs and pairs[head] == closers) or (head and head in closers):
        return spans, closers, None
    return spans, None, opener


def _opens(para: str, i: int, ch: str) -> bool:
    before = para[i - 1] if i else " "
    after = para[i + 1] if i + 1 < len(para) else ""
    if not after or (after.isspace() and ch not in "«»"):
        return False  # a mark before a space closes, or stands alone
    if ch in _SINGLE or ch == '"':
        if before.isalnum():
            return False  # don't, rock'n'roll
        if ch in _SINGLE:
            if after.isdigit() or _ELISIONS.match(para, i + 1):
                return False  # the '90s, 'n', 'em
            return _single_closes(para, i)
    return True


def _single_closes(para: str, i: int) -> bool:
    """A single opening quote counts when a closing one follows that ends speech-like
    text (or none follows: then the quotation may run on)."""
    for m in re.finditer(r"[’']", para[i + 1 :]):
        j = i + 1 + m.start()
        nxt = para[j + 1] if j + 1 < len(para) else ""
        if nxt.isalpha():
            continue  # an apostrophe inside a word
        inner = para[i + 1 : j]
        return " " in inner or (inner[-1:] in _SPEECHY_END)
    return True


def _closes(para: str, i: int, ch: str, opener: str, start: int) -> bool:
    after = para[i + 1] if i + 1 < len(para) else ""
    if ch in "’'" and after.isalpha():
        return False  # don’t
    if ch == '"' and i == start + 1:
        return False
    if ch in "’'" and opener in _SINGLE:
        before = para[i - 1]
        # "the boys’ boat" inside a single quotation: a plural possessive, not the end
        return not (before == "s" and after == " " and i + 2 < len(para) and para[i + 2].islower())
    return True


def _dash_speech(para: str, code: str) -> list[Span]:
    """A paragraph opened by a dialogue dash: speech, switching at each later dash."""
    spans: list[Span] = []
    speaking, start = True, 0
    for i in range(1, len(para)):
        if para[i] not in _DASHES:
            continue
        before, after = para[i - 1], para[i + 1] if i + 1 < len(para) else ""
        # "I—I" is a stammer, not a switch: a switching dash has a space before it, or
        # punctuation or a space after it (Spanish closes an incise with "—.").
        if not (before.isspace() or not after or after.isspace() or after in ",.;:!?"):
            continue
        if speaking:
            spans.append(Span(start, i))
        else:
            start = i
        speaking = not speaking
    if speaking:
        spans.append(Span(start, len(para)))
    if code == "fr":
        spans = [piece for s in spans for piece in _incises(para, s, code)]
    return [s for s in spans if para[s.start : s.end].strip(_DASHES + " ,.")]


_FR_INCISE = regex.compile(
    r"[,!?…]\s+((?:"
    + "|".join(re.escape(v) for v in SPEECH_VERBS["fr"])
    + r")(?:-t)?-(?:il|elle|ils|elles|on|je|tu)|(?:"
    + "|".join(re.escape(v) for v in SPEECH_VERBS["fr"])
    + r")\s+\p{Lu}[\w’'-]*(?:\s+\p{Lu}[\w’'-]*)?)\s*(?=[,.;!?»]|$)"
)


def _incises(para: str, span: Span, code: str) -> list[Span]:
    """A French speech span without its incises (", dit-il,"), which are narration."""
    pieces: list[Span] = []
    start = span.start
    for m in _FR_INCISE.finditer(para, span.start, span.end):
        pieces.append(Span(start, m.start(1), span.continued and start == span.start))
        end = m.end()
        if end < span.end and para[end] == ",":
            end += 1
        start = end
    pieces.append(Span(start, span.end, span.continued and start == span.start))
    return [p for p in pieces if para[p.start : p.end].strip(" ,.«»" + _DASHES)]
