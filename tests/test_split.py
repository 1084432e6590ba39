"""The splitter: billing characters, sentence boundaries, chunk limits, nothing lost."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from narrator.chunks.cast import Cast, Casting
from narrator.chunks.lexicon import Lexicon
from narrator.chunks.split import (
    Chunk,
    billing_bound,
    billing_chars,
    iter_chunks,
    split_document,
    split_text,
)
from narrator.errors import ConfigError, InputError
from narrator.inputs.documents import Chapter, Document, parse_text

FAMILY = "👩\u200d👩\u200d👧"  # one grapheme, five code points
E_ACUTE = "e\u0301"  # one grapheme, two code points


def squeeze(text: str) -> str:
    """The text without any whitespace: what splitting must preserve."""
    return "".join(text.split())


def sentences(text: str, lang: str = "en", *, expected: list[str]) -> list[str]:
    """Split so that each expected sentence fits a chunk alone but no two fit together."""
    costs = [billing_chars(s) for s in expected]
    max_chars = max(costs)
    assert all(a + b > max_chars for a, b in itertools.pairwise(costs)), "test data too uneven"
    return split_text(text, max_chars=max_chars, lang=lang)


# --- billing characters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("Hello, world!", 13),
        (" \n\t", 3),
        ("中文", 4),  # Chinese
        ("漢字かなカナ", 8),  # Japanese: kanji 2, kana 1
        ("한국어", 3),  # hangul 1
        ("韓國語", 6),  # hanja 2
        ("ｶﾅ", 2),  # half-width katakana
        ("。，、！？「」", 7),  # CJK punctuation
        ("\u3400\U00020000\U0002a700\U00030000", 8),  # extensions A, B, C, G
        ("\uf900\U0002f800", 4),  # compatibility ideographs
        ("😀", 1),
        (FAMILY, 5),  # per code point
        ("🇫🇷", 2),
        (E_ACUTE, 2),
        ("ㄅ", 1),  # bopomofo
    ],
)
def test_billing_chars(text: str, expected: int) -> None:
    assert billing_chars(text) == expected


def test_chunk_is_a_frozen_dataclass() -> None:
    chunk = Chunk(index=0, chapter=0, text="Hi.", billing_chars=3, paragraph_start=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.text = "Bye."  # type: ignore[misc]


# --- settings -----------------------------------------------------------------------


@pytest.mark.parametrize("max_chars", [1, 0, -5])
def test_max_chars_below_two_is_a_config_error(max_chars: int) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        split_text("Hello.", max_chars=max_chars)
    with pytest.raises(ConfigError, match="Han character"):
        split_document(parse_text("Hello."), max_chars=max_chars)


@pytest.mark.parametrize("lang", ["xx", "ko", "", "en-US", "zh_CN", "JA"])
def test_any_language_code_works(lang: str) -> None:
    text = "Hello there, friend. Bye now! 我爱你。你好！"
    chunks = split_text(text, max_chars=20, lang=lang)
    assert squeeze("".join(chunks)) == squeeze(text)
    assert "Hello there, friend." in chunks


def test_empty_input_gives_no_chunks() -> None:
    assert split_text("") == []
    assert split_text(" \n\n \t\n\u3000 ") == []
    assert split_document(parse_text("")) == []
    assert split_document(Document("t", (Chapter(0, "  ", ("", " \n ")),))) == []


# --- pysbd's edge cases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Dr. Smith went to Washington. He arrived at noon.",
            ["Dr. Smith went to Washington.", "He arrived at noon."],
            id="title-abbreviation",
        ),
        pytest.param(
            "Use e.g. apples or pears here. Then stop it.",
            ["Use e.g. apples or pears here.", "Then stop it."],
            id="e.g.",
        ),
        pytest.param(
            "The U.S. economy grew fast. It was fine then.",
            ["The U.S. economy grew fast.", "It was fine then."],
            id="U.S.",
        ),
        pytest.param(
            "Pi is 3.14 or so. Tea costs $2.50 today.",
            ["Pi is 3.14 or so.", "Tea costs $2.50 today."],
            id="decimals",
        ),
        pytest.param(
            '"Hello." she said to him. Then she left.',
            ['"Hello." she said to him.', "Then she left."],
            id="quote-then-lowercase",
        ),
        pytest.param(
            "He left at once. \u201cWhy?\u201d she asked.",
            ["He left at once.", "\u201cWhy?\u201d she asked."],
            id="curly-quotes",
        ),
        pytest.param(
            "He paused... Then he spoke.",
            ["He paused...", "Then he spoke."],
            id="ellipsis-dots",
        ),
        pytest.param(
            # pysbd does not split after U+2026; we do, before a capital.
            "I don't know\u2026 Really now.",
            ["I don't know\u2026", "Really now."],
            id="ellipsis-char",
        ),
        pytest.param(
            "First one is here. second one has no end",
            ["First one is here.", "second one has no end"],
            id="no-final-punctuation",
        ),
        pytest.param(
            # pysbd splits at "?" inside the URL; we put it back together.
            "Go to https://ex.com/a.b?c=d now. Then go on.",
            ["Go to https://ex.com/a.b?c=d now.", "Then go on."],
            id="url-query",
        ),
    ],
)
def test_english_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text, expected=expected) == expected


def test_ellipsis_before_lowercase_is_not_a_boundary() -> None:
    text = "Wait... what happened here? I am not sure."
    assert split_text(text, max_chars=28) == ["Wait... what happened here?", "I am not sure."]


@pytest.mark.parametrize("lang", ["zh", "ja", "en", "hi", "xx"])
def test_cjk_sentences_split_on_full_stops(lang: str) -> None:
    # "hi" is a pysbd language that does not know 。！？ itself.
    expected = ["我爱你们。", "你好吗！", "真的吗？"]
    assert sentences("我爱你们。你好吗！真的吗？", lang, expected=expected) == expected


def test_closing_quote_stays_with_its_sentence() -> None:
    # pysbd "zh" gives ['他说：“你好。', '”然后走了。'].
    expected = ["他说：“你好。”", "然后走了。"]
    assert sentences("他说：“你好。”然后走了。", "zh", expected=expected) == expected


def test_doubled_cjk_marks_stay_together() -> None:
    # pysbd "ja" gives ['すごい！', '？本当に。'].
    expected = ["すごい！？", "本当に。"]
    assert sentences("すごい！？本当に。", "ja", expected=expected) == expected


def test_text_pysbd_loses_is_kept() -> None:
    # pysbd's own segment() returns [] for this (pySBD issue #126).
    text = "Completely orange\u261d\ufe0eA new album"
    assert split_text(text) == [text]


def test_sentences_are_joined_with_one_space_and_cjk_with_none() -> None:
    text = "One  two.\nThree four.   Five six.\t我爱你。  你好！"
    assert split_text(text) == ["One two. Three four. Five six. 我爱你。 你好！"]
    assert split_text("我爱你。你好！真的吗？") == ["我爱你。你好！真的吗？"]


def test_line_wraps_inside_a_paragraph() -> None:
    text = "It was the best of times,\nit was the worst.\n\n我爱\n你。他\r\n好。"
    assert split_text(text) == ["It was the best of times, it was the worst.\n\n我爱你。他好。"]


def test_huge_paragraph_is_segmented_in_windows() -> None:
    expected = [f"Sentence number {i} is right here, Dr. Who." for i in range(2000, 3000)]
    text = " ".join(expected)  # 40 KB, one paragraph: far above one pysbd window
    assert split_text(text, max_chars=max(map(len, expected))) == expected


# --- packing ------------------------------------------------------------------------


def test_sentences_and_paragraphs_are_packed_greedily() -> None:
    text = "Aa bb. Cc dd. Ee ff.\n\nGg hh. Ii jj."
    assert split_text(text, max_chars=13) == ["Aa bb. Cc dd.", "Ee ff.", "Gg hh. Ii jj."]
    assert split_text(text, max_chars=22) == ["Aa bb. Cc dd. Ee ff.", "Gg hh. Ii jj."]
    assert split_text(text, max_chars=28) == ["Aa bb. Cc dd. Ee ff.\n\nGg hh.", "Ii jj."]
    assert split_text(text, max_chars=35) == ["Aa bb. Cc dd. Ee ff.\n\nGg hh. Ii jj."]


def test_limit_counts_han_twice() -> None:
    text = "一二三。四五六。"
    assert split_text(text, max_chars=13) == ["一二三。", "四五六。"]
    assert split_text(text, max_chars=14) == [text]


def test_document_chunks_respect_chapters_and_titles() -> None:
    doc = parse_text(
        "Before any heading.\n\n# One\n\nFirst para. More.\n\nSecond para.\n\n"
        "# Two\n\nLast para.\n\n# Empty"
    )
    chunks = split_document(doc, max_chars=600)
    assert [(c.index, c.chapter, c.text, c.paragraph_start) for c in chunks] == [
        (0, 0, "Before any heading.", True),
        (1, 1, "One", True),
        (2, 1, "First para. More.\n\nSecond para.", True),
        (3, 2, "Two", True),
        (4, 2, "Last para.", True),
        (5, 3, "Empty", True),
    ]
    assert all(c.billing_chars == billing_chars(c.text) for c in chunks)


def test_chunks_never_cross_chapters() -> None:
    doc = parse_text("# A\n\nOne. Two.\n\n# B\n\nThree. Four.")
    chunks = split_document(doc, max_chars=20)
    assert [(c.chapter, c.text) for c in chunks] == [
        (0, "A"),
        (0, "One. Two."),
        (1, "B"),
        (1, "Three. Four."),
    ]


def test_paragraph_start_marks_only_a_chunk_that_begins_a_paragraph() -> None:
    doc = parse_text("# Title\n\nFirst one. Second one. Third one.\n\nNext para.")
    chunks = split_document(doc, max_chars=22)
    assert [(c.text, c.paragraph_start) for c in chunks] == [
        ("Title", True),
        ("First one. Second one.", True),
        ("Third one.\n\nNext para.", False),  # its first piece continues a paragraph
    ]


def test_long_title_is_cut_and_kept_apart() -> None:
    doc = parse_text("# A very long title, with clauses\n\nBody.")
    chunks = split_document(doc, max_chars=20)
    assert [(c.text, c.paragraph_start) for c in chunks] == [
        ("A very long title,", True),
        ("with clauses", False),
        ("Body.", True),
    ]


# --- over-long sentences ------------------------------------------------------------


def test_long_sentence_is_cut_after_clause_punctuation() -> None:
    text = "Aaaa bbbb, cccc dddd; eeee ffff: gggg\u2014hhhh iiii."
    assert split_text(text, max_chars=12) == [
        "Aaaa bbbb,",
        "cccc dddd;",
        "eeee ffff:",
        "gggg\u2014",
        "hhhh iiii.",
    ]


def test_clause_pieces_are_packed_again() -> None:
    text = "Aa, bb, cc, dd, ee, ff, gg."
    assert split_text(text, max_chars=12) == ["Aa, bb, cc,", "dd, ee, ff,", "gg."]


def test_cjk_clause_punctuation() -> None:
    text = "一二三四五，六七八九十、甲乙丙丁戊；己庚辛壬癸：子丑寅卯辰。"
    assert split_text(text, max_chars=12, lang="zh") == [
        "一二三四五，",
        "六七八九十、",
        "甲乙丙丁戊；",
        "己庚辛壬癸：",
        "子丑寅卯辰。",
    ]


def test_a_run_of_dashes_is_one_clause_end() -> None:
    text = "他说——我们走吧——然后走了"
    assert split_text(text, max_chars=12, lang="zh") == [
        "他说——",
        "我们走吧——",
        "然后走了",
    ]


def test_numbers_and_urls_are_not_clause_ends() -> None:
    text = "It cost 1,000,000 or so, at 3:45 via https://ex.com/a,b now"
    assert split_text(text, max_chars=18) == [
        "It cost 1,000,000",
        "or so, at 3:45 via",
        "https://ex.com/a,b",
        "now",
    ]


def test_clause_too_long_is_cut_at_whitespace() -> None:
    text = "aaaa bbbb cccc dddd eeee, ffff."
    assert split_text(text, max_chars=10) == ["aaaa bbbb", "cccc dddd", "eeee,", "ffff."]


def test_long_token_is_cut_hard() -> None:
    url = "https://example.com/" + "abcdefghij" * 5
    chunks = split_text(f"See {url} now.", max_chars=20)
    assert chunks == ["See", url[:20], url[20:40], url[40:60], url[60:] + " now."]


def test_unbroken_han_is_cut_hard_by_billing() -> None:
    assert split_text("一二三四五六七", max_chars=5) == ["一二", "三四", "五六", "七"]


# --- grapheme clusters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("grapheme", "max_chars"),
    [
        (FAMILY, 12),
        (FAMILY, 5),
        (E_ACUTE, 5),
        ("🇫🇷", 3),
        ("👍🏽", 7),
        ("각", 2),
        ("ᄀ\u1161\u11a8", 4),
    ],
)
def test_hard_cut_never_splits_a_grapheme(grapheme: str, max_chars: int) -> None:
    chunks = split_text(grapheme * 15, max_chars=max_chars)
    per_chunk = max_chars // billing_chars(grapheme)
    assert chunks == [grapheme * per_chunk] * (15 // per_chunk) + (
        [grapheme * (15 % per_chunk)] if 15 % per_chunk else []
    )


def test_grapheme_over_the_limit_is_cut_between_code_points() -> None:
    chunks = split_text(FAMILY * 2, max_chars=3)
    assert "".join(chunks) == FAMILY * 2
    assert all(1 <= billing_chars(c) <= 3 for c in chunks)


def test_clause_cut_does_not_detach_a_combining_mark() -> None:
    text = "aaaa,\u0301 bbbb"
    assert split_text(text, max_chars=7) == ["aaaa,\u0301", "bbbb"]


# --- properties ---------------------------------------------------------------------

ATOMS = [
    *"abcXYZ019 .,;:!?\"'()—-$%/\n\t",
    *"中文漢字我爱你かなカナ한국어。！？，、：；「」“”…",
    "\u3000",
    "\u00a0",
    " \n\n ",
    "Dr. ",
    "e.g. ",
    "U.S. ",
    "3.14",
    "$2.50",
    "...",
    "https://ex.com/a.b?c=d&e=f",
    FAMILY,
    E_ACUTE,
    "🇫🇷",
    "😀",
    "\u0301",
    "\u200d",
    "\ufe0e",
    "# ",
    "\n# Heading\n",
    "\r\n",
]
TEXTS = st.lists(st.sampled_from(ATOMS), max_size=120).map("".join)
LANGS = st.sampled_from(["en", "zh", "ja", "xx"])
MAX_CHARS = st.integers(min_value=2, max_value=200)


def check_chunk_texts(texts: list[str], max_chars: int) -> None:
    for text in texts:
        assert text == text.strip()
        assert 1 <= billing_chars(text) <= max_chars


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, max_chars=MAX_CHARS, lang=LANGS)
def test_split_text_loses_nothing_and_respects_the_limit(
    text: str, max_chars: int, lang: str
) -> None:
    chunks = split_text(text, max_chars=max_chars, lang=lang)
    check_chunk_texts(chunks, max_chars)
    assert squeeze("".join(chunks)) == squeeze(text)


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, max_chars=MAX_CHARS, lang=LANGS)
def test_split_document_loses_nothing_and_respects_chapters(
    text: str, max_chars: int, lang: str
) -> None:
    doc = parse_text(text)
    chunks = split_document(doc, max_chars=max_chars, lang=lang)
    check_chunk_texts([c.text for c in chunks], max_chars)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.billing_chars == billing_chars(c.text) for c in chunks)
    assert squeeze("".join(c.text for c in chunks)) == squeeze(doc.text)
    # The spending guards count without splitting: never less than the split bills.
    assert billing_bound(doc) >= sum(c.billing_chars for c in chunks)
    for chapter in doc.chapters:
        mine = [c for c in chunks if c.chapter == chapter.index]
        spoken = [chapter.title or "", *chapter.paragraphs]
        assert squeeze("".join(c.text for c in mine)) == squeeze("".join(spoken))
        if mine:
            assert mine[0].paragraph_start
        title = squeeze(chapter.title or "")
        if title:  # the title's chunks hold the title and nothing else
            head = itertools.accumulate(squeeze(c.text) for c in mine)
            assert next(h for h in head if len(h) >= len(title)) == title
    assert [c.chapter for c in chunks] == sorted(c.chapter for c in chunks)


GRAPHEMES = st.sampled_from(["a", "中", "か", FAMILY, E_ACUTE, "🇫🇷", "👍🏽", "각", "ﾞ", "-", "."])


@settings(max_examples=200, deadline=None)
@given(graphemes=st.lists(GRAPHEMES, min_size=1, max_size=80), max_chars=MAX_CHARS)
def test_cuts_fall_between_graphemes(graphemes: list[str], max_chars: int) -> None:
    text = "".join(graphemes)
    if any(billing_chars(g) > max_chars for g in regex.findall(r"\X", text)):
        max_chars = max(billing_chars(g) for g in regex.findall(r"\X", text))
    chunks = split_text(text, max_chars=max_chars)
    assert "".join(chunks) == text
    boundaries = set(itertools.accumulate(len(g) for g in regex.findall(r"\X", text)))
    assert set(itertools.accumulate(len(c) for c in chunks)) <= boundaries


def test_chunks_come_one_by_one_as_they_close_and_the_bound_counts_respellings() -> None:
    lexicon = Lexicon.parse('[words]\nNASA = "National Aeronautics and Space Administration"\n')
    doc = parse_text("# One\n\n" + "NASA flew. " * 40 + "\n\nShort.\n\n# Two\n\nEnd.")
    chunks = iter_chunks(doc, max_chars=120, lexicon=lexicon)
    first = next(chunks)  # before the rest of the document is split
    whole = split_document(doc, max_chars=120, lexicon=lexicon)
    assert [first, *chunks] == whole
    assert first.text == "One" and len(whole) > 5
    assert billing_bound(doc, lexicon=lexicon) >= sum(c.billing_chars for c in whole)
    assert billing_bound(doc, lexicon=lexicon) > billing_bound(doc)  # respelled: longer


def test_voiced_chunks_stream_and_the_bound_takes_each_voices_respelling() -> None:
    cast = Cast.parse('[cast]\nAlice = "Cherry"\n')
    casting = Casting(cast, "Elias", "Sunny")
    # Only Alice's voice respells the word, and only she says it.
    lexicon = Lexicon.parse(
        '[[entry]]\nterm = "NASA"\nsay = "National Aeronautics and Space Administration"\n'
        'voice = ["Cherry"]\n'
    )
    body = "\n\n".join(f'"NASA flew {n}," said Alice. The narrator went on.' for n in range(8))
    doc = parse_text("# One\n\n" + body)
    whole = split_document(doc, max_chars=80, lexicon=lexicon, casting=casting)
    assert list(iter_chunks(doc, max_chars=80, lexicon=lexicon, casting=casting)) == whole
    assert {c.voice for c in whole} >= {"Cherry", "Elias"}
    bound = billing_bound(doc, lexicon=lexicon, casting=casting)
    assert bound >= sum(c.billing_chars for c in whole)
    assert bound > billing_bound(doc, lexicon=lexicon, voice="Elias")  # no respelling


def test_the_bound_respells_within_a_budget() -> None:
    # A pattern that backtracks without end fails the guard's count as it fails the split.
    lexicon = Lexicon.parse('[[entry]]\nterm = "(a|aa)+$"\nsay = "x"\nregex = true\n')
    doc = parse_text("a" * 40 + "b")
    with pytest.raises(InputError):
        billing_bound(doc, lexicon=lexicon)
    # And so does a respelling too large, counted in the same kind of budget.
    grows = Lexicon.parse('[words]\nb = "' + "long " * 10 + '"\n')
    short = parse_text("a b")
    with pytest.raises(InputError):
        billing_bound(short, lexicon=grows, max_text_chars=20)
    assert billing_bound(short, lexicon=grows) > 50
