"""Quoted speech by language: quotation marks, apostrophes, dialogue dashes, quotations
over paragraphs, and marks that never close."""

from __future__ import annotations

import pytest

from narrator.chunks.dialogue import find_speech


def spoken(paragraphs: list[str], lang: str) -> list[list[str]]:
    speech = find_speech(paragraphs, lang)
    return [
        [para[s.start : s.end].strip() for s in spans]
        for para, spans in zip(paragraphs, speech.spans, strict=True)
    ]


@pytest.mark.parametrize(
    ("lang", "para", "expected"),
    [
        ("en", "“Yes,” he said. “I’ll come.”", ["“Yes,”", "“I’ll come.”"]),
        ("en", '"Yes," he said. "I\'ll come."', ['"Yes,"', '"I\'ll come."']),
        ("en", "‘I know,’ said Alice, ‘it’s late.’", ["‘I know,’", "‘it’s late.’"]),
        ("de", "„Komm her“, sagte Anna. »Nein«, rief Bob.", ["„Komm her“", "»Nein«"]),
        ("fr", "« Oui, dit-il, je viens. »", ["« Oui,", "je viens. »"]),
        ("ru", "«Привет», — сказала Анна.", ["«Привет»"]),
        ("zh", "“你好，”爱丽丝说。「行。」他答道。", ["“你好，”", "「行。」"]),
        ("ja", "『はい』と彼は言った。", ["『はい』"]),
        # dialogue dashes at a paragraph's start, and the incises they mark
        ("fr", "— Oui, dit-il.", ["— Oui,"]),
        ("fr", "— Non ! répondit Marie.", ["— Non !"]),
        ("es", "—Sí —dijo él—. Vamos.", ["—Sí", "—. Vamos."]),
        ("ru", "— Да, — сказал он. — Пойдём.", ["— Да,", "— Пойдём."]),
        ("es", "Era—era tarde.", []),  # a dash inside narration is no dialogue
    ],
)
def test_quotation_marks_by_language(lang: str, para: str, expected: list[str]) -> None:
    assert spoken([para], lang) == [expected]


@pytest.mark.parametrize(
    "para",
    [
        "Don't go; rock 'n' roll was big in the '90s, in the boys' boat.",
        "They'd've said 'em all, 'tis true.",
        "The 5' 11\" man didn't.",
    ],
)
def test_apostrophes_are_not_quotations(para: str) -> None:
    assert spoken([para], "en") == [[]]
    assert find_speech([para], "en").warnings == ()


def test_a_quotation_over_paragraphs_stays_speech() -> None:
    paragraphs = [
        "“It began in spring,” she said. “We walked to the river every day.",
        "“Then the rain came.",
        "“And it never stopped,” she said.",
        "Nobody answered.",
    ]
    speech = find_speech(paragraphs, "en")
    assert spoken(paragraphs, "en") == [
        ["“It began in spring,”", "“We walked to the river every day."],
        ["“Then the rain came."],
        ["“And it never stopped,”"],
        [],
    ]
    assert [s.continued for s in speech.spans[1]] == [True]
    assert speech.warnings == ()


def test_an_unclosed_mark_ends_with_its_paragraph_and_is_reported() -> None:
    paragraphs = [
        "He said “this never closes. The narrator goes on.",
        "Chapter text carries on, not speech.",
        "Still narration.",
    ]
    speech = find_speech(paragraphs, "en")
    assert spoken(paragraphs, "en") == [["“this never closes. The narrator goes on."], [], []]
    assert len(speech.warnings) == 1
    assert "paragraph 1" in speech.warnings[0] and "never closed" in speech.warnings[0]
