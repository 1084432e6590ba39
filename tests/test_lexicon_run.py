"""The lexicon end to end: the real ``narrator`` process against the loopback emulator,
which records (as hashes) every text it was asked to speak."""

from __future__ import annotations

import json
import tomllib
import wave
from pathlib import Path

from narrator.tools.emulator import RunningEmulator
from narrator.tools.emulator.config import billed_key

from .conftest import TEST_KEY, run_cli

ENV = {"AIMLAPI_KEY": TEST_KEY}

# One paragraph per chunk at --max-chars 45, so every text the emulator receives is known.
DOCUMENT = """# WCAG basics

The WCAG rules matter to Zyxandra.

Nobody says wcagx, XWCAG or wcag.

We met Zyxandra in Paris.

Nothing to respell here.
"""

LEXICON = """
[words]
WCAG = "W C A G"
Zyxandra = "Zix-andra"

[[entry]]
term = "Paris"
say = "Pa-ree"
lang = "fr"
"""


def args(emulator: RunningEmulator, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--base-url", emulator.url, "--cache-dir", str(tmp_path / "cache"), "--rpm", "6000",
        "--concurrency", "2", "--max-chars", "45", "--quiet", *extra,
    ]  # fmt: skip


def received(emulator: RunningEmulator) -> dict[str, int]:
    return dict(emulator.stats.billed)


def keys(*texts: str) -> set[str]:
    return {billed_key("Cherry", text) for text in texts}


async def test_the_service_hears_the_respelling_only_where_it_belongs(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "doc.md").write_text(DOCUMENT)
    (tmp_path / "lex.toml").write_text(LEXICON)
    out = tmp_path / "book.mp3"
    result = await run_cli(
        "narrate", str(tmp_path / "doc.md"), "-o", str(out), "--subtitles", "srt",
        "--lexicon", str(tmp_path / "lex.toml"), "--report", str(tmp_path / "r.json"),
        *args(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert set(received(emulator)) == keys(
        "W C A G basics",  # the title is spoken, so respelled
        "The W C A G rules matter to Zix-andra.",
        "Nobody says wcagx, XWCAG or wcag.",  # whole words, and WCAG's case
        "We met Zix-andra in Paris.",  # Paris is respelled for French only
        "Nothing to respell here.",
    )
    # Tags and subtitles show the text as written.
    report = json.loads((tmp_path / "r.json").read_text())["documents"][0]
    assert [c["title"] for c in report["chapters"]] == ["WCAG basics"]
    assert report["respelled_chunks"] == 3
    subtitles = out.with_suffix(".srt").read_text()
    assert "The WCAG rules matter to Zyxandra." in subtitles
    assert "WCAG basics" in subtitles
    assert "W C A G" not in subtitles and "Zix" not in subtitles
    assert "the lexicon respelled 3 chunks" in result.stderr


async def test_changing_one_entry_bills_only_the_chunks_with_that_term(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "doc.md").write_text(DOCUMENT)
    lexicon = tmp_path / "lex.toml"
    lexicon.write_text(LEXICON)
    run = ["narrate", str(tmp_path / "doc.md"), "-o", str(tmp_path / "book.wav")]
    run += ["--lexicon", str(lexicon), *args(emulator, tmp_path)]
    first = await run_cli(*run, env=ENV)
    assert first.code == 0, first.stderr
    assert emulator.stats.requests == 5
    before = received(emulator)

    lexicon.write_text(LEXICON.replace("Zix-andra", "Zik-sahn-dra"))
    second = await run_cli(*run, env=ENV)
    assert second.code == 0, second.stderr
    assert emulator.stats.requests == 7  # two more: the two chunks naming Zyxandra
    new = set(received(emulator)) - set(before)
    assert new == keys("The W C A G rules matter to Zik-sahn-dra.", "We met Zik-sahn-dra in Paris.")
    assert all(received(emulator)[key] == 1 for key in before)  # nothing billed twice

    # An entry for a word the book does not contain changes nothing: the book is current.
    lexicon.write_text(lexicon.read_text().replace("[words]", '[words]\nSQL = "sequel"'))
    third = await run_cli(*run, env=ENV)
    assert third.code == 0, third.stderr
    assert emulator.stats.requests == 7
    assert "up-to-date" in third.stdout


async def test_a_bad_lexicon_stops_the_run_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "doc.md").write_text(DOCUMENT)
    (tmp_path / "bad.toml").write_text('[words]\nWCAG = "W C A G"\nSQL = sequel\n')
    (tmp_path / "worse.toml").write_text('[[entry]]\nterm = "(WCAG"\nregex = true\nsay = "x"\n')
    for name, where in (("bad.toml", "line 3"), ("worse.toml", 'entry 1 ("(WCAG")')):
        result = await run_cli(
            "narrate", str(tmp_path / "doc.md"), "-o", str(tmp_path / "b.wav"),
            "--lexicon", str(tmp_path / name), *args(emulator, tmp_path), env=ENV,
        )  # fmt: skip
        assert result.code == 2
        line = result.stderr.strip().splitlines()[-1]
        assert name in line and where in line, result.stderr
        assert "Traceback" not in result.stderr
    # A document's own lexicon is read before anything is sent, too.
    (tmp_path / "doc.lexicon.toml").write_text("[words\n")
    result = await run_cli(
        "narrate", str(tmp_path / "doc.md"), "-o", str(tmp_path / "b.wav"),
        *args(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert result.code == 2 and "doc.lexicon.toml" in result.stderr and "line 1" in result.stderr
    assert emulator.stats.requests == 0


async def test_the_settings_file_lexicon_comes_first(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "doc.md").write_text("Say WCAG and SQL.")
    # Named in the settings file, found beside it.
    (tmp_path / "conf" / "global.toml").write_text('[words]\nWCAG = "wuh-cag"\nSQL = "sequel"')
    (tmp_path / "conf" / "narrator.toml").write_text('lexicon = "global.toml"\n')
    (tmp_path / "mine.toml").write_text('[words]\nWCAG = "W C A G"')
    result = await run_cli(
        "narrate", "doc.md", "-o", "b.wav", "--config", "conf/narrator.toml",
        "--lexicon", "mine.toml", *args(emulator, tmp_path), env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert set(received(emulator)) == keys("Say W C A G and sequel.")


PLANTED = """# Field notes

Zyxandra wrote the WCAG report with NASA & the ESA.

Her iOS app syncs B2B orders; COVID-19 cut sales by 40%.

WCAG audits, WCAG again: Zyxandra measured 37° ± 2 at NASA & home.

Chapter § 4 covers COVID-19 and iOS.
"""


async def test_words_lists_what_a_voice_may_misread(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(PLANTED)
    (tmp_path / "lex.toml").write_text(LEXICON)
    result = await run_cli(
        "words", str(tmp_path / "notes.md"), "--lexicon", str(tmp_path / "lex.toml")
    )
    assert result.code == 0, result.stderr
    rows = {
        (cells[0], cells[1]): cells
        for line in result.stdout.splitlines()[1:]
        if (cells := line.split())
    }
    expected = {
        # word, kind: count, first place, covered by the lexicon
        ("WCAG", "acronym"): ("3", "ch 1 ¶ 1", "yes"),
        ("NASA", "acronym"): ("2", "ch 1 ¶ 1", "no"),
        ("ESA", "acronym"): ("1", "ch 1 ¶ 1", "no"),
        ("B2B", "digits"): ("1", "ch 1 ¶ 2", "no"),
        ("COVID-19", "digits"): ("2", "ch 1 ¶ 2", "no"),
        ("iOS", "mixed case"): ("2", "ch 1 ¶ 2", "no"),
        ("Zyxandra", "unknown"): ("2", "ch 1 ¶ 1", "yes"),
        ("&", "symbol"): ("2", "ch 1 ¶ 1", "no"),
        ("%", "symbol"): ("1", "ch 1 ¶ 2", "no"),
        ("°", "symbol"): ("1", "ch 1 ¶ 3", "no"),
        ("±", "symbol"): ("1", "ch 1 ¶ 3", "no"),
        ("§", "symbol"): ("1", "ch 1 ¶ 4", "no"),
    }
    for (word, kind), (count, first, covered) in expected.items():
        cells = rows.get((word, kind.split()[0]))
        assert cells is not None, (word, result.stdout)
        line = " ".join(cells)
        assert line.endswith(f"{count} {first} {covered}"), line
    # Ordinary English words are not listed.
    listed = {word for word, _ in rows}
    assert not listed & {"wrote", "report", "orders", "sales", "measured", "audits", "covers"}

    skeleton = await run_cli(
        "words", str(tmp_path / "notes.md"), "--lexicon", str(tmp_path / "lex.toml"),
        "--format", "toml",
    )  # fmt: skip
    assert skeleton.code == 0, skeleton.stderr
    words = tomllib.loads(skeleton.stdout)["words"]
    assert {"NASA", "ESA", "B2B", "COVID-19", "iOS", "&", "%", "°", "±", "§"} <= set(words)
    assert "WCAG" not in words and "Zyxandra" not in words  # covered already
    assert words["NASA"] == "NASA"  # to be edited


async def test_say_makes_one_request_and_a_playable_wav(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "lex.toml").write_text(LEXICON)
    common = ["--lexicon", str(tmp_path / "lex.toml"), "--base-url", emulator.url]
    out = tmp_path / "audition.wav"
    result = await run_cli("say", "Is WCAG clear?", "-o", str(out), *common, env=ENV)
    assert result.code == 0, result.stderr
    assert emulator.stats.requests == 1
    assert set(received(emulator)) == keys("Is W C A G clear?")
    assert result.stdout.strip() == str(out)
    with wave.open(str(out)) as wav:
        assert wav.getnframes() > wav.getframerate() // 10  # some audio, readable

    result = await run_cli("say", "Zyxandra", *common, env=ENV)
    assert result.code == 0, result.stderr
    made = Path(result.stdout.strip())
    try:
        assert made.parent != tmp_path and made.suffix == ".wav"
        with wave.open(str(made)) as wav:
            assert wav.getnframes() > 0
    finally:
        made.unlink()
    assert emulator.stats.requests == 2

    too_long = "word " * 200
    result = await run_cli("say", too_long, *common, env=ENV)
    assert result.code == 2 and "narrator narrate" in result.stderr
    assert emulator.stats.requests == 2
