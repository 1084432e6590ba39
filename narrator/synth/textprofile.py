"""The gate's reading of a chunk's text: its weight per script (a billing character;
a Han character counts 2 like the bill), so its speech can be expected to last so long."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import regex

__all__ = ["MIN_WEIGHT", "PURE", "TextProfile", "profile"]


MIN_WEIGHT = 12.0  # shorter chunks are mostly their fixed overhead: not learned from
PURE = 0.85  # a chunk this much of one script teaches that script's rate
_SCRIPTS = ("latin", "han", "kana", "hangul")  # each has a prior in quality.PRIORS

# Counted with regular expressions (in C): a Python loop over every character cost more
# than measuring the audio.
_HAN = regex.compile(r"\p{Han}")
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_HANGUL = regex.compile(r"\p{Hangul}")
_ALNUM = re.compile(r"[^\W_]")  # what str.isalnum() says yes to
_DIGIT = re.compile(r"\d")  # decimal digits, in any script
_BREAKS = re.compile(r"[^\S ]")  # whitespace but the plain space: line breaks and the like


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What the gate needs to know of a chunk's text: its weight per script."""

    weights: tuple[tuple[str, float], ...]  # (script, weight), only scripts present
    paragraph_breaks: int
    speakable: bool  # it has a letter or a digit: it must make a sound

    @property
    def weight(self) -> float:
        return sum(w for _, w in self.weights)

    @property
    def main(self) -> str | None:
        """The script that makes up at least :data:`PURE` of a chunk long enough to teach
        its rate, if any (never ``digits``: they are read too variously)."""
        total = self.weight
        for script, w in self.weights:
            if total >= MIN_WEIGHT and w >= PURE * total and script != "digits":
                return script
        return None

    @property
    def mixed(self) -> bool:
        """Two scripts (digits aside) with neither making up :data:`PURE` of the letters."""
        letters = [w for script, w in self.weights if script != "digits"]
        return len(letters) > 1 and max(letters) < PURE * sum(letters)


@functools.lru_cache(maxsize=4096)
def profile(text: str) -> TextProfile:
    """Weigh a chunk's text: Han 2 (as billed), any other letter or a digit 1 (a digit
    in its own class); spaces and punctuation 1, in the dominant script (they are pauses)."""
    alnum = len(_ALNUM.findall(text))
    han, kana, hangul, digits = (
        len(pattern.findall(text)) if alnum and not (text.isascii() and pattern is not _DIGIT)
        else 0
        for pattern in (_HAN, _KANA, _HANGUL, _DIGIT)
    )  # fmt: skip
    counts = {
        "latin": float(alnum - han - kana - hangul - digits),
        "han": 2.0 * han,
        "kana": float(kana),
        "hangul": float(hangul),
        "digits": float(digits),
    }
    quiet = len(text) - alnum - len(_BREAKS.findall(text))
    speakable = alnum > 0
    dominant = max(_SCRIPTS, key=lambda s: counts[s])  # Latin for digits alone
    counts[dominant] += quiet
    weights = tuple((s, w) for s, w in counts.items() if w > 0)
    breaks = text.count("\n\n") + text.count("\u2029")
    return TextProfile(weights, breaks, speakable)
