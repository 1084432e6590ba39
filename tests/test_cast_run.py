"""A cast of voices end to end: the real ``narrator`` process against the loopback
emulator, which records (as hashes of voice and text) every request it bills."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from narrator.cli import main
from narrator.tools.emulator import RunningEmulator
from narrator.tools.emulator.config import billed_key

from .conftest import TEST_KEY, run_cli

ENV = {"AIMLAPI_KEY": TEST_KEY}

# Each text with its cast and what the service must hear: (voice, text) per request.
# The narrator is Elias; speech the cast cannot place is Sunny's.
TEXTS = {
    "en": (
        """# One

"Where are you going?" asked Alice.

"To the river," Bob replied. "It's late, and the boys' boat won't wait."

"May I come?"

"If you like."

"I'm coming with you. I've waited all day, rock 'n' roll or not.

"And I won't be left behind," said Alice.

The sun set over the hills of the '90s.

He said "this never closes. The narrator goes on.

The end.
""",
        '[cast]\nAlice = "Cherry"\nBob = {voice = "Ethan", also = ["Mr. Smith"]}\n',
        [
            ("Elias", "One"),
            ("Cherry", '"Where are you going?"'),
            ("Elias", "asked Alice."),
            ("Ethan", '"To the river,"'),
            ("Elias", "Bob replied."),
            ("Ethan", "\"It's late, and the boys' boat won't wait.\""),
            ("Cherry", '"May I come?"'),
            ("Ethan", '"If you like."'),
            (
                "Cherry",
                "\"I'm coming with you. I've waited all day, rock 'n' roll or not.\n\n"
                '"And I won\'t be left behind,"',
            ),
            ("Elias", "said Alice.\n\nThe sun set over the hills of the '90s.\n\nHe said"),
            ("Sunny", '"this never closes. The narrator goes on.'),
            ("Elias", "The end."),
        ],
    ),
    "de": (
        "# Eins\n\n„Komm her“, sagte Anna.\n\n»Nein«, rief Bob. »Ich bleibe hier.«\n\n"
        "»Doch.«\n\nDer Abend kam.\n",
        '[cast]\nAnna = "Cherry"\nBob = "Ethan"\n',
        [
            ("Elias", "Eins"),
            ("Cherry", "„Komm her“,"),
            ("Elias", "sagte Anna."),
            ("Ethan", "»Nein«,"),
            ("Elias", "rief Bob."),
            ("Ethan", "»Ich bleibe hier.«"),
            ("Cherry", "»Doch.«"),
            ("Elias", "Der Abend kam."),
        ],
    ),
    "fr": (
        "# Un\n\n— Bonjour, dit Marie.\n\n— Salut ! répondit Pierre.\n\n— Tu viens ?\n\n"
        "« Oui, dit-il, je viens. »\n\nIls partirent.\n",
        '[cast]\nMarie = "Cherry"\nPierre = "Ethan"\n',
        [
            ("Elias", "Un"),
            ("Cherry", "— Bonjour,"),
            ("Elias", "dit Marie."),
            ("Ethan", "— Salut !"),
            ("Elias", "répondit Pierre."),
            ("Cherry", "— Tu viens ?"),
            ("Ethan", "« Oui,"),
            ("Elias", "dit-il,"),
            ("Ethan", "je viens. »"),
            ("Elias", "Ils partirent."),
        ],
    ),
    "zh": (
        "# 第一章\n\n“你好，”爱丽丝说。\n\n“你好。”鲍勃答道。\n\n“走吧。”\n\n“好。”\n\n天黑了。\n",
        '[cast]\n"爱丽丝" = "Cherry"\n"鲍勃" = "Ethan"\n',
        [
            ("Elias", "第一章"),
            ("Cherry", "“你好，”"),
            ("Elias", "爱丽丝说。"),
            ("Ethan", "“你好。”"),
            ("Elias", "鲍勃答道。"),
            ("Cherry", "“走吧。”"),
            ("Ethan", "“好。”"),
            ("Elias", "天黑了。"),
        ],
    ),
}


def common(emulator: RunningEmulator, tmp_path: Path) -> list[str]:
    return [
        "--base-url", emulator.url, "--cache-dir", str(tmp_path / "cache"), "--rpm", "6000",
        "--concurrency", "4", "--quiet", "--voice", "Elias", "--dialogue-voice", "Sunny",
    ]  # fmt: skip


def write_texts(folder: Path) -> list[str]:
    folder.mkdir()
    inputs = []
    for lang, (text, cast, _) in TEXTS.items():
        (folder / f"{lang}.md").write_text(text)
        (folder / f"{lang}.cast.toml").write_text(cast)  # found beside the document
        inputs.append(str(folder / f"{lang}.md"))
    return inputs


async def test_every_quotation_in_its_speakers_voice_billed_once(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    inputs = write_texts(tmp_path / "texts")
    out = tmp_path / "books"
    result = await run_cli(
        "narrate", *inputs, "-o", str(out), "--format", "wav", "--report", str(tmp_path / "r.json"),
        *common(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    expected = [pair for _, _, pairs in TEXTS.values() for pair in pairs]
    # Every request in the voice it belongs to, each chunk billed once, nothing else sent.
    assert emulator.stats.billed == {billed_key(v, t): 1 for v, t in expected}
    voices: dict[str, int] = {}
    for voice, _ in expected:
        voices[voice] = voices.get(voice, 0) + 1
    assert emulator.stats.voices == voices
    assert "never closed" in result.stderr  # the unbalanced quotation, in the warnings
    report = json.loads((tmp_path / "r.json").read_text())
    english = next(d for d in report["documents"] if d["input"].endswith("en.md"))
    # Who speaks how much, per chapter: the narrator, the cast, unattributed speech.
    voices = {(v["speaker"], v["voice"]): v["chunks"] for v in english["voices"]}
    assert voices == {
        ("", "Elias"): 5,
        ("Alice", "Cherry"): 3,
        ("Bob", "Ethan"): 3,
        ("?", "Sunny"): 1,
    }
    assert all(v["chapter"] == 0 and v["characters"] > 0 for v in english["voices"])
    page = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "r.json"), "-o", str(page)]) == 0
    html = page.read_text()
    assert "Who speaks" in html and "unattributed speech" in html and "Cherry" in html

    # Again: every segment is in the cache, nothing is paid for twice.
    requests = emulator.stats.requests
    again = await run_cli(
        "narrate", *inputs, "-o", str(out), "--format", "wav", "--force",
        *common(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert emulator.stats.requests == requests

    # Bob gets another voice: only his quotations are synthesized again.
    english_cast = tmp_path / "texts" / "en.cast.toml"
    english_cast.write_text(english_cast.read_text().replace('"Ethan"', '"Ryan"'))
    recast = await run_cli(
        "narrate", *inputs, "-o", str(out), "--format", "wav", *common(emulator, tmp_path), env=ENV
    )
    assert recast.code == 0, recast.stderr
    bob = [t for v, t in TEXTS["en"][2] if v == "Ethan"]
    assert emulator.stats.requests == requests + len(bob)
    assert all(emulator.stats.billed[billed_key("Ryan", t)] == 1 for t in bob)


async def test_an_unknown_cast_voice_stops_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "story.md").write_text('"Hello," said Alice.\n')
    (tmp_path / "story.cast.toml").write_text('[cast]\nAlice = "Nobody"\n')
    result = await run_cli(
        "narrate", str(tmp_path / "story.md"), "-o", str(tmp_path / "out.wav"),
        *common(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert result.code == 2
    assert "Nobody" in result.stderr and "Traceback" not in result.stderr
    assert emulator.stats.requests == 0


async def test_a_transcript_is_read_per_speaker(emulator: RunningEmulator, tmp_path: Path) -> None:
    (tmp_path / "talk.txt").write_text(
        "Q: What did you see?\n\nANNA: A boat on the river.\n\nQ: Anything else?\n\n"
        "ANNA: Nothing.\n\nNote: the interview ended there.\n"
    )
    (tmp_path / "cast.toml").write_text('[cast]\nQ = "Ryan"\nAnna = "Cherry"\n')
    result = await run_cli(
        "narrate", str(tmp_path / "talk.txt"), "-o", str(tmp_path / "talk.wav"),
        "--speaker-lines", "--subtitles", "srt", *common(emulator, tmp_path), env=ENV,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    heard = [
        ("Ryan", "What did you see?"),
        ("Cherry", "A boat on the river."),
        ("Ryan", "Anything else?"),
        ("Cherry", "Nothing."),
        ("Elias", "Note: the interview ended there."),  # not a speaker: no name in capitals
    ]
    assert emulator.stats.billed == {billed_key(v, t): 1 for v, t in heard}
    subtitles = (tmp_path / "talk.srt").read_text()
    assert "ANNA: A boat on the river." in subtitles  # shown, not read


def test_narrator_cast_lists_the_speakers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, _, _ = TEXTS["en"]
    (tmp_path / "story.md").write_text(text)
    assert main(["cast", str(tmp_path / "story.md")]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    # name, voice (none: no cast yet), quotations, by tag, by turn, by line, first line
    assert rows["Alice"][:6] == ["Alice", "-", "3", "2", "1", "0"]
    assert rows["Bob"][:6] == ["Bob", "-", "3", "2", "1", "0"]
    assert '"Where are you going?"' in out
    assert "1 quotations unattributed" in err
    assert main(["cast", str(tmp_path / "story.md"), "--format", "toml"]) == 0
    skeleton = capsys.readouterr().out
    assert 'Alice = "' in skeleton and 'Bob = "' in skeleton
    (tmp_path / "story.cast.toml").write_text(skeleton)
    assert main(["cast", str(tmp_path / "story.md")]) == 0  # the skeleton is a valid cast


def test_estimate_counts_requests_and_characters_per_voice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, cast, pairs = TEXTS["en"]
    (tmp_path / "story.md").write_text(text)
    (tmp_path / "cast.toml").write_text(cast)  # found in the document's folder
    story = str(tmp_path / "story.md")
    assert main(["estimate", story, "--voice", "Elias", "--dialogue-voice", "Sunny"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    for voice in ("Elias", "Cherry", "Ethan", "Sunny"):
        chars = sum(len(t) for v, t in pairs if v == voice)
        assert rows[voice] == [str(sum(v == voice for v, _ in pairs)), f"{chars:,}"]
    (tmp_path / "cast.toml").write_text('[cast]\nAlice = "Nobody"\n')
    assert main(["estimate", story]) == 2  # an unknown voice: refused before anything
    assert "Nobody" in capsys.readouterr().err


def test_a_found_settings_file_names_casts_in_its_own_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "story.md").write_text('"Hi," said Alice.\n')
    (tmp_path / "elsewhere.toml").write_text('[cast]\nAlice = "Cherry"\n')
    (project / "narrator.toml").write_text('cast = "../elsewhere.toml"\n')
    monkeypatch.chdir(project)
    assert main(["cast", "story.md"]) == 2
    err = capsys.readouterr().err  # the trust model's refusal: the file, the key, the fixes
    assert "narrator.toml: cast = '../elsewhere.toml'" in err and "--config" in err
    (project / "mine.toml").write_text('[cast]\nAlice = "Cherry"\n')
    (project / "narrator.toml").write_text('cast = "mine.toml"\n')
    assert main(["cast", "story.md"]) == 0
    assert "Cherry" in capsys.readouterr().out
