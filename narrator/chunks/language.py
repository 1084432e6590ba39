"""Which language a text is written in, as a pysbd (ISO 639-1) language code: the one
place narrator guesses a language.

Sentence splitting needs the language (abbreviations, full stops); the service itself
detects the language from the text. A small heuristic is enough for that: the script
decides most cases (Han, kana, Hangul, Cyrillic, Greek, Arabic...), and for Latin
script the most frequent short words ("the", "der", "les", "el"...) decide the rest.
It looks at the first few thousand characters, so it is cheap on a whole book.
:func:`script_language` is the per-chunk guess from the script alone (the eSpeak voice
and DashScope's ``language_type`` use it).
"""

from __future__ import annotations

from collections import Counter

import regex

from ..inputs.documents import Document

__all__ = ["AUTO", "detect_language", "resolve_language", "script_language"]


AUTO = "auto"
_SAMPLE = 20_000  # characters looked at; a book's first pages tell its language

# Scripts that name one language outright (pysbd codes; "ko" is not a pysbd language,
# the splitter falls back to English rules for it, which split Korean well).
_SCRIPTS = {
    "Hangul": "ko",
    "Greek": "el",
    "Armenian": "hy",
    "Ethiopic": "am",
    "Myanmar": "my",
    "Devanagari": "hi",
}
_LETTER = regex.compile(
    r"(?P<Han>\p{Han})|(?P<Kana>[\p{Hiragana}\p{Katakana}])|(?P<Hangul>\p{Hangul})"
    r"|(?P<Cyrillic>\p{Cyrillic})|(?P<Greek>\p{Greek})|(?P<Arabic>\p{Arabic})"
    r"|(?P<Armenian>\p{Armenian})|(?P<Ethiopic>\p{Ethiopic})|(?P<Myanmar>\p{Myanmar})"
    r"|(?P<Devanagari>\p{Devanagari})|(?P<Latin>\p{Latin})"
)
_WORD = regex.compile(r"\p{L}+")

# The commonest short words of each Latin-script language pysbd or the model knows.
# Words shared by several languages ("de", "en", "a") are left out where they would blur.
_STOPWORDS = {
    "en": "the and of to is in that it was for with as on he she you be at this are not have",
    "de": "der die und das ist nicht ich sie er zu den mit von sich des auf ein eine dem wir",
    "fr": "le la les et des est une du que dans qui pas pour sur il elle au ce sont avec nous",
    "es": "el los las y que del por una con para es se lo como más pero sus le fue muy",
    "it": "il di che la è per una sono non gli della con del le si nel alla anche più",
    "pt": "o os as que do da não uma com para é em dos das mais por se ao foi você",
    "nl": "het een van de en dat is niet ik op zijn voor met hij maar ook als bij er",
    "da": "og det er at til på med af den jeg ikke som har for var de han hun men",
    "pl": "i w nie się na że to jest z do jak ale co tak po jego od są czy",
    "sk": "a je v na sa že to nie ako do so by sme ale aj už som pre",
}
_STOPWORD_SETS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}


def detect_language(text: str) -> str:
    """The pysbd language code of ``text`` ("en", "zh", "ja", "de", "ru", ...).

    Falls back to "en", whose rules split most scripts sensibly, when nothing tells.
    """
    sample = text[:_SAMPLE]
    scripts: Counter[str] = Counter()
    for match in _LETTER.finditer(sample):
        scripts[match.lastgroup or ""] += 1
    if not scripts:
        return "en"
    # Kana only appears in Japanese; Japanese text is mostly kana with some kanji.
    if scripts["Kana"] and scripts["Kana"] * 5 >= scripts["Han"]:
        cjk = scripts["Han"] + scripts["Kana"]
        if cjk * 3 >= scripts["Latin"]:
            return "ja"
    # A Han character is a word, Latin letters come about five to a word.
    if (
        scripts["Han"]
        and scripts["Han"] * 5 >= scripts["Latin"]
        and scripts["Han"] > max(scripts["Hangul"], scripts["Cyrillic"])
    ):
        return "zh"
    script, _ = max(scripts.items(), key=lambda item: (item[1], item[0] == "Latin"))
    if script in _SCRIPTS:
        return _SCRIPTS[script]
    if script == "Cyrillic":
        return _cyrillic(sample)
    if script == "Arabic":
        return _arabic(sample)
    if script == "Latin":
        return _latin(sample)
    return "en"


def _cyrillic(sample: str) -> str:
    if regex.search(r"[әғқңөұүһі]", sample, flags=regex.IGNORECASE):
        return "kk"
    lower = sample.lower()
    # "ы" and "э" are Russian only; a high share of "ъ" is Bulgarian.
    if lower.count("ъ") > 3 * (lower.count("ы") + lower.count("э")) + 2:
        return "bg"
    return "ru"


def _arabic(sample: str) -> str:
    if regex.search(r"[ےٹڈڑں]", sample):
        return "ur"
    if regex.search(r"[پچژگ]", sample):
        return "fa"
    return "ar"


def _latin(sample: str) -> str:
    scores: Counter[str] = Counter()
    for word in _WORD.findall(sample.lower()):
        for lang, words in _STOPWORD_SETS.items():
            if word in words:
                scores[lang] += 1
    if not scores:
        return "en"
    best, _ = max(scores.items(), key=lambda item: (item[1], item[0] == "en"))
    return best


def _is_han(ch: str) -> bool:
    return (
        "\u4e00" <= ch <= "\u9fff"  # CJK Unified Ideographs
        or "\u3400" <= ch <= "\u4dbf"  # extension A
        or "\uf900" <= ch <= "\ufaff"  # compatibility ideographs
        or "\U00020000" <= ch <= "\U0003134f"  # extensions B-G
    )


def _is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff" or "\uff66" <= ch <= "\uff9d"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def script_language(text: str) -> str:
    """The language of one chunk's ``text`` as its script tells it, on every letter.

    ``"ja"`` if it has any kana (Japanese mixes kana with Han), ``"ko"`` if it has
    hangul, ``"zh"`` if at least half of its letters are Han, ``"ru"`` if most are
    Cyrillic, else ``"en"``. Latin-script languages are not told apart: the eSpeak voice
    reads them acceptably with English rules, and DashScope only needs the script.
    :func:`detect_language` is the fuller guess for a whole document.
    """
    han = kana = hangul = cyrillic = letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        if _is_kana(ch):
            kana += 1
        elif _is_hangul(ch):
            hangul += 1
        elif _is_han(ch):
            han += 1
        elif "\u0400" <= ch <= "\u04ff":
            cyrillic += 1
    if kana:
        return "ja"
    if hangul:
        return "ko"
    if letters and 2 * han >= letters:
        return "zh"
    if letters and 2 * cyrillic > letters:
        return "ru"
    return "en"


def resolve_language(document: Document, setting: str) -> str:
    """The language to split ``document`` with: ``setting`` unless it is "auto", then the
    document's own ``lang`` if it has one, else one detected from its text."""
    if setting.strip().lower() != AUTO:
        return setting
    return document.lang or detect_language(document.text)
