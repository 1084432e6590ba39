"""Deterministic inputs for the benchmarks: prose in English and Chinese, chunk-sized lines.

Everything is generated from a seeded :class:`random.Random`, so every run (and every
machine) measures the same text, and nothing is downloaded.
"""

from __future__ import annotations

import random

__all__ = ["chinese", "english", "numbered_lines"]


_WORDS = (
    "the of and to in that it was he for on are as with his they at be this from have "
    "or by one had not but what all were when we there can an your which their said if "
    "do will each about how up out them then she many some so these would other into has "
    "more her two like him see time could no make than first been its who now people my "
    "made over did down only way find use may water long little very after words called "
    "just where most know get through back much before go good new write our used me man "
    "too any day same right look think also around another came come work three word must "
    "because does part even place well such here take why things help put years different "
    "away again off went old number great tell men say small every found still between "
    "name should home big give air line set own under read last never us left end along "
    "while might next sound below saw something thought both few those always looked show "
    "large often together asked house world going want school important until form food "
    "keep children feet land side without boy once animals life enough took sometimes four "
    "head above kind began almost live page got earth need far hand high year mother light "
    "parts country father let night following picture being study second eyes soon times "
    "story boys since white days ever paper hard near sentence better best across during "
    "today others however sure means knew try told young miles sun ways thing whole hear "
    "example heard several change answer room sea against top turned learn point city play "
    "toward five using himself usually river morning"
).split()
# Things a sentence splitter must not cut at: titles, initials, decimals, ellipses.
_ASIDES = (
    "Mr. Hale said so",
    "as Dr. Wu put it",
    "at 3.5 miles an hour",
    "e.g. the old mill",
    "in the U.S. at least",
    "around 10 a.m. or so",
    "or so it seemed...",
    "with J. R. Barton",
)
_ENDS = ".....?!"

# About four hundred common Han characters; enough variety for realistic segmentation.
_HAN = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也"
    "能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现"
    "实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表"
    "间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系"
    "军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资"
    "边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据"
    "处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收"
    "证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华"
    "名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持"
    "音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市"
)


def english(size: int, *, seed: int = 1) -> str:
    """About ``size`` characters of English prose: chapters of paragraphs of sentences."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = chapter = 0
    while total < size:
        if chapter == 0 or rng.random() < 0.02:
            chapter += 1
            parts.append(f"# Chapter {chapter}")
        sentences = []
        for _ in range(rng.randint(2, 12)):
            words = rng.choices(_WORDS, k=rng.randint(4, 30))
            if rng.random() < 0.15:
                words.insert(rng.randrange(len(words)), rng.choice(_ASIDES) + ",")
            sentence = " ".join(words)
            quoted = rng.random() < 0.1
            sentence = sentence[0].upper() + sentence[1:] + rng.choice(_ENDS)
            sentences.append(f"\u201c{sentence}\u201d" if quoted else sentence)
        parts.append(" ".join(sentences))
        total += len(parts[-1]) + 2
    return "\n\n".join(parts)[:size]


def chinese(size_bytes: int, *, seed: int = 2) -> str:
    """About ``size_bytes`` of UTF-8 Chinese prose (3 bytes a character)."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size_bytes:
        sentences = []
        for _ in range(rng.randint(2, 8)):
            clauses = ["".join(rng.choices(_HAN, k=rng.randint(4, 16))) for _ in range(3)]
            sentences.append("，".join(clauses[: rng.randint(1, 3)]) + rng.choice("。。。！？"))
        parts.append("".join(sentences))
        total += len(parts[-1].encode()) + 2
    text = "\n\n".join(parts)
    return text.encode()[:size_bytes].decode(errors="ignore")


def numbered_lines(count: int, *, width: int) -> str:
    """``count`` distinct paragraphs of ``width`` characters each, one chunk apiece.

    With ``--max-chars`` at least ``width`` and below ``2 * width + 2`` (two paragraphs
    and the blank line between them), the splitter makes exactly one chunk per line.
    """
    rng = random.Random(count * 1000 + width)
    lines = []
    for i in range(count):
        head = f"Line {i:05d}"
        body = head
        while len(body) < width - 1:
            body += " " + rng.choice(_WORDS)
        lines.append(body[: width - 1].rstrip() + ".")
    return "\n\n".join(lines) + "\n"
