"""The pronunciation lexicon: its format and errors, how it matches, and where it applies."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from narrator.chunks.lexicon import MAX_BYTES, Lexicon, combined, local_lexicons
from narrator.chunks.split import split_document
from narrator.errors import ConfigError, LexiconError
from narrator.estimate import estimate
from narrator.inputs.documents import parse_text

LEXICON = """
[words]
WCAG = "W C A G"
"C++" = "C plus plus"
Hermione = "Her-my-oh-nee"

[[entry]]
term = "St."
say = "Saint"

[[entry]]
term = '(\\d+)\\s?%'
regex = true
say = '\\1 percent'

[[entry]]
term = "行"
say = "xíng"
lang = "zh"

[[entry]]
term = "Paris"
say = "Pa-ree"
voice = ["Ethan"]
"""


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon.parse(LEXICON, source="test.toml")


def test_whole_words_only(lexicon: Lexicon) -> None:
    assert lexicon.apply("WCAG, XWCAG, WCAGs and WCAG.") == "W C A G, XWCAG, WCAGs and W C A G."


def test_case_follows_the_term(lexicon: Lexicon) -> None:
    # A capital after the first letter makes the term case-sensitive; a plain word is not.
    assert lexicon.apply("wcag WCAG") == "wcag W C A G"
    assert lexicon.apply("HERMIONE hermione") == "Her-my-oh-nee Her-my-oh-nee"
    explicit = Lexicon.parse('[[entry]]\nterm = "Bath"\nsay = "Baath"\ncase_sensitive = true')
    assert explicit.apply("Bath bath") == "Baath bath"


def test_terms_with_symbols_and_regexes(lexicon: Lexicon) -> None:
    assert lexicon.apply("C++ and St. Paul, 50% or 7 %") == (
        "C plus plus and Saint Paul, 50 percent or 7 percent"
    )


def test_scope_by_language_and_voice(lexicon: Lexicon) -> None:
    assert lexicon.apply("银行 行", "zh-Hans") == "银xíng xíng"  # no word boundaries in Han
    assert lexicon.apply("银行 行", "ja") == "银行 行"
    assert lexicon.apply("Paris", "en", "ethan") == "Pa-ree"
    assert lexicon.apply("Paris", "en", "Cherry") == "Paris"


def test_longest_match_wins_whatever_the_order() -> None:
    one = '[words]\n"New York" = "A"\n"York City" = "B"\n"New York City" = "C"\nYork = "D"'
    two = '[words]\nYork = "D"\n"New York City" = "C"\n"York City" = "B"\n"New York" = "A"'
    text = "New York City, New York, York City, York."
    assert Lexicon.parse(one).apply(text) == Lexicon.parse(two).apply(text) == "C, A, B, D."


def test_later_lexicons_win_per_term() -> None:
    first = Lexicon.parse('[words]\nWCAG = "wuh-cag"\nSQL = "sequel"')
    second = Lexicon.parse('[words]\nWCAG = "W C A G"')
    assert first.then(second).apply("WCAG SQL") == "W C A G sequel"
    assert second.then(first).apply("WCAG SQL") == "wuh-cag sequel"


def test_an_entry_is_replaced_only_within_its_scope() -> None:
    zh = Lexicon.parse('[[entry]]\nterm = "行"\nsay = "xíng"\nlang = "zh"')
    ja = Lexicon.parse('[[entry]]\nterm = "行"\nsay = "gyō"\nlang = "ja"')
    anywhere = Lexicon.parse('[words]\n"行" = "hang"')
    both = zh.then(ja)
    assert (both.apply("行", "zh"), both.apply("行", "ja"), both.apply("行", "en")) == (
        "xíng",
        "gyō",
        "行",
    )
    # In scope together, the later entry wins where both match.
    assert zh.then(anywhere).apply("行", "zh") == "hang"
    assert anywhere.then(zh).apply("行", "zh") == "xíng"
    assert anywhere.then(zh).apply("行", "en") == "hang"


def test_load_combines_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "lexicon.toml").write_text('[words]\nX = "folder"\nY = "folder"\nZ = "folder"')
    (tmp_path / "book.lexicon.toml").write_text('[words]\nY = "document"\nZ = "document"')
    (tmp_path / "book.md").write_text("X Y Z")
    (tmp_path / "cli.toml").write_text('[words]\nZ = "command line"')
    (tmp_path / "global.toml").write_text('[words]\nX = "global"\nW = "global"')
    files = combined([tmp_path / "global.toml"], str(tmp_path / "book.md"), [tmp_path / "cli.toml"])
    assert [f.name for f in files] == [
        "global.toml",
        "lexicon.toml",
        "book.lexicon.toml",
        "cli.toml",
    ]
    assert Lexicon.load(*files).apply("W X Y Z") == "global folder document command line"
    assert local_lexicons("https://example.com/a.html") == []
    assert local_lexicons("<stdin>") == []


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[words]\nWCAG = "W C A G"\nSQL = sequel\n')
    with pytest.raises(LexiconError, match=r"bad\.toml.*line 3"):
        Lexicon.load(path)
    with pytest.raises(LexiconError, match=r"missing\.toml: cannot be read"):
        Lexicon.load(tmp_path / "missing.toml")
    assert issubclass(LexiconError, ConfigError)  # the CLI's exit 2, one line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[words]\nWCAG = ""', r"words\.WCAG: say must be a non-empty string"),
        ("[words]\nWCAG = 3", r"words\.WCAG: say must be"),
        ('[[entry]]\nterm = "a"\nsay = "b"\nwhole = true', r"entry 1 \(a\): unknown key 'whole'"),
        ('[[entry]]\nsay = "b"', r"entry 1: term must be"),
        ('[[entry]]\nterm = "(x"\nregex = true\nsay = "b"', r'entry 1 \("\(x"\): missing \)'),
        ('[[entry]]\nterm = "x"\nregex = true\nsay = "\\\\2"', r"entry 1 \(x\): invalid group"),
        ('[[entry]]\nterm = "x?"\nregex = true\nsay = "b"', r"matches empty text"),
        ('[[entry]]\nterm = "x"\nsay = "b"\nlang = 5', r"entry 1 \(x\): lang must be"),
        ('[[entry]]\nterm = "x"\nsay = "b"\nregex = "yes"', r"regex must be true or false"),
        ('[phonemes]\nx = "y"', r"unknown table 'phonemes'"),
    ],
)
def test_bad_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(LexiconError, match=r"lexicon f\.toml: .*" + message):
        Lexicon.parse(text, source="f.toml")


def test_splitting_counts_the_spoken_form_and_keeps_the_written(lexicon: Lexicon) -> None:
    doc = parse_text("# WCAG notes\n\nThe WCAG rules. Other text here.\n\nNo terms at all.")
    chunks = split_document(doc, max_chars=24, lexicon=lexicon)
    assert [(c.text, c.written) for c in chunks] == [
        ("W C A G notes", "WCAG notes"),
        ("The W C A G rules.", "The WCAG rules."),
        ("Other text here.", None),
        ("No terms at all.", None),
    ]
    assert all(c.billing_chars <= 24 for c in chunks)
    assert [c.shown for c in chunks][:2] == ["WCAG notes", "The WCAG rules."]
    # Unchanged without a lexicon: the chapter title in the document stays as written.
    assert doc.chapters[-1].title == "WCAG notes"


def test_a_respelling_cut_between_chunks_is_shown_whole() -> None:
    long = Lexicon.parse('[words]\nX = "one two three four five six seven eight nine ten"')
    chunks = split_document(parse_text("Start X end."), max_chars=20, lexicon=long)
    assert " ".join(c.text for c in chunks) == (
        "Start one two three four five six seven eight nine ten end."
    )
    shown = [c.shown for c in chunks]
    assert "".join(shown).replace(" ", "") == "StartXend."
    assert sum("X" in s for s in shown) == 1


@given(st.lists(st.sampled_from(["WCAG", "word", "C++", "St.", "50%", "Hermione", " ", ", "])))
def test_the_written_text_is_kept_whole(parts: list[str]) -> None:
    # Cut anywhere (even inside a respelling), the chunks' written texts give back the text.
    lexicon = Lexicon.parse(LEXICON)
    text = "".join(parts).strip() or "x"
    chunks = split_document(parse_text(text), max_chars=12, lexicon=lexicon)
    assert "".join("".join(c.shown for c in chunks).split()) == "".join(text.split())
    assert "".join("".join(c.text for c in chunks).split()) == "".join(
        lexicon.apply(" ".join(text.split())).split()
    )


def test_the_estimate_counts_the_spoken_form(tmp_path: Path) -> None:
    (tmp_path / "lex.toml").write_text('[words]\nWCAG = "W C A G"')
    doc = parse_text("WCAG " * 50)  # one chunk either way
    plain = estimate([doc], provider="aimlapi")
    spoken = estimate([doc], provider="aimlapi", lexicons=[tmp_path / "lex.toml"])
    assert spoken.billing_characters - plain.billing_characters == 50 * 3


def test_a_lexicon_file_over_the_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    line = 'Xerxes = "Zerk-seez"\n'
    fits = tmp_path / "fits.toml"
    fits.write_text("[words]\n" + "# padding\n" * ((MAX_BYTES - 200) // 10) + line)
    assert Lexicon.load(fits).apply("Xerxes") == "Zerk-seez"
    huge = tmp_path / "huge.toml"
    huge.write_text("[words]\n" + "# padding\n" * (MAX_BYTES // 10) + line)
    with pytest.raises(LexiconError, match=r"huge\.toml: larger than 8 MiB"):
        Lexicon.load(huge)
