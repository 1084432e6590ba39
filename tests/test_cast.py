"""The cast file, attribution (tags, turn-taking, aliases, speaker lines) and how the
splitter packs a cast's chunks."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pytest

from narrator.chunks.attribution import cast_chapter
from narrator.chunks.cast import (
    MAX_BYTES,
    MAX_ENTRIES,
    NARRATION,
    UNATTRIBUTED,
    Cast,
    Casting,
    combined,
)
from narrator.chunks.split import split_document
from narrator.errors import CastError, ConfigError
from narrator.inputs.documents import parse_text

CAST = Cast.parse(
    """
[cast]
Alice = "Cherry"
Bob = {voice = "Ethan", also = ["Mr. Smith", "Bobby"]}

[chapters]
"Part 2*" = "Ryan"
"""
)


def who(paragraphs: list[str], lang: str = "en", casting: Casting | None = None) -> list:
    """Each paragraph's lines as (speaker, how, text)."""
    casting = casting or Casting(CAST, "Elias", "Sunny")
    lines, _ = cast_chapter(paragraphs, lang, casting)
    return [
        [(line.speaker, line.how, para[line.start : line.end].strip()) for line in its]
        for para, its in zip(paragraphs, lines, strict=True)
    ]


def test_tags_then_turn_taking_in_a_two_person_exchange() -> None:
    paragraphs = [
        '"Where are you going?" asked Alice.',
        '"To the river," Mr. Smith replied.',
        '"May I come?"',
        '"If you like."',
        '"Then wait for me."',
        "The sun set.",
        '"Hello," he said.',  # a new exchange: a pronoun names nobody
    ]
    assert [[(s, h) for s, h, _ in p if s] for p in who(paragraphs)] == [
        [("Alice", "tag")],
        [("Bob", "tag")],  # by an alias
        [("Alice", "turn")],
        [("Bob", "turn")],
        [("Alice", "turn")],
        [],
        [(UNATTRIBUTED, "")],
    ]


@pytest.mark.parametrize(
    ("lang", "para", "speaker"),
    [
        ("en", '"Yes," said Bobby.', "Bob"),
        ("en", 'Alice said: "Good night."', "Alice"),
        ("en", '"No," Alice whispered.', "Alice"),
        ("en", '"No," Alice quietly whispered.', "Alice"),  # a cast name and a verb
        ("en", '"No," Carol whispered.', None),  # not cast: the dialogue voice
        ("de", "„Komm her“, sagte Alice.", "Alice"),
        ("fr", "— Bonjour, dit Alice.", "Alice"),
        ("zh", "“你好，”爱丽丝说。", "爱丽丝"),
    ],
)
def test_speech_tags(lang: str, para: str, speaker: str | None) -> None:
    cast = CAST.then(Cast.parse('[cast]\n"爱丽丝" = "Cherry"\n'))
    lines = who([para], lang, Casting(cast, "Elias", "Sunny"))[0]
    speech = [s for s, _, _ in lines if s != NARRATION]
    if speaker is None:
        assert speech == [UNATTRIBUTED] or speech == []
    else:
        assert speech == [speaker]


def test_without_a_cast_the_names_come_from_the_tags() -> None:
    lines = who(
        ['"Hi," said Carol.', '"Hello," Dave answered.'], casting=Casting(dialogue_voice="X")
    )
    assert [p[0][:2] for p in lines] == [("Carol", "tag"), ("Dave", "tag")]


def test_speaker_lines_only_when_asked_and_the_name_is_not_read() -> None:
    paragraphs = ["ANNA: I saw a boat.", "Q: What else?", "Note: this is narration.", "Bob: Fine."]
    plain = who(paragraphs)
    assert all(line[0] == NARRATION for p in plain for line in p)
    lines, _ = cast_chapter(paragraphs, "en", Casting(CAST, "Elias", "Sunny", speaker_lines=True))
    got = [
        [(x.speaker, x.silent, p[x.start : x.end].strip()) for x in its]
        for p, its in zip(paragraphs, lines, strict=True)
    ]
    assert got == [
        [("ANNA", True, "ANNA:"), ("ANNA", False, "I saw a boat.")],
        [("Q", True, "Q:"), ("Q", False, "What else?")],
        [(NARRATION, False, "Note: this is narration.")],  # not a name in capitals, not cast
        [("Bob", True, "Bob:"), ("Bob", False, "Fine.")],
    ]


def test_chapter_patterns_choose_the_narrator() -> None:
    casting = Casting(CAST, "Elias")
    assert casting.narrator("Part 2: The river") == "Ryan"
    assert casting.narrator("part 2") == "Ryan"  # case does not matter
    assert casting.narrator("Part 1") == "Elias"


DIALOGUE = """# One

"Where are you going?" asked Alice.

"To the river," Bob replied. "It's late, and the boys' boat won't wait."

"May I come?"

"If you like."

"I'm coming with you. I've waited all day, rock 'n' roll or not.

"And I won't be left behind," said Alice.

The sun set over the hills of the '90s.

He said "this never closes. The narrator goes on.

The end.

# Part 2

ANNA: A line of her own.
"""


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_no_text_lost_or_doubled_and_no_chunk_mixes_voices() -> None:
    doc = parse_text(DIALOGUE)
    casting = Casting(CAST, "Elias", "Sunny", speaker_lines=True)
    warned: list[str] = []
    chunks = split_document(doc, max_chars=600, casting=casting, warn=warned.append)
    written = squeeze("".join(c.shown for c in chunks))
    assert written == squeeze(DIALOGUE.replace("# ", ""))
    assert [(c.voice, c.text) for c in chunks] == [
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
        ("Ryan", "Part 2"),
        ("Sunny", "A line of her own."),  # ANNA is not cast: the dialogue voice
    ]
    assert chunks[-1].written == "ANNA: A line of her own."
    assert len(warned) == 1 and "never closed" in warned[0]


def test_a_voice_change_elsewhere_leaves_a_speakers_chunks_as_they_were() -> None:
    doc = parse_text(DIALOGUE)
    before = split_document(doc, casting=Casting(CAST, "Elias", "Sunny"))
    recast = CAST.then(Cast.parse('[cast]\nBob = "Elias"\n'))  # Bob now sounds like the narrator
    after = split_document(doc, casting=Casting(recast, "Elias", "Sunny"))
    alice = {(c.voice, c.text) for c in before if c.speaker == "Alice"}
    assert alice and alice <= {(c.voice, c.text) for c in after}


def exchange(turns: int) -> str:
    """A dialogue-heavy chapter: short tagged and untagged quotations, turn after turn."""
    lines = ["# Talk", ""]
    for n in range(turns):
        name = ("Alice", "Bob")[n % 2]
        if n % 3 == 0:
            lines.append(f'"Line {n}, I think," said {name}. "And a second thought about it."')
        else:
            lines.append(f'"Short answer number {n}."')
        lines.append("")
        if n % 10 == 9:
            lines.append("They walked on in silence for a while, under the trees.")
            lines.append("")
    return "\n".join(lines)


def test_short_quotations_do_not_multiply_the_requests() -> None:
    doc = parse_text(exchange(60))
    one_voice = split_document(doc)
    cast = split_document(doc, casting=Casting(CAST, "Elias", "Sunny"))
    changes = 1 + sum(a.speaker != b.speaker for a, b in pairwise(cast))
    # As few requests as the voice changes allow: one per run of one speaker.
    assert len(cast) == changes + sum(c.chapter != 0 for c in cast)
    # The figure docs/cast.md states: 6 requests in one voice, 107 with a cast, for the
    # same characters billed (fewer: no paragraph breaks inside a chunk).
    assert (len(one_voice), len(cast)) == (6, 107)
    assert sum(c.billing_chars for c in cast) <= sum(c.billing_chars for c in one_voice)


def test_a_hostile_cast_file_may_only_name_voices(tmp_path: Path) -> None:
    for text in (
        '[cast]\nAlice = "../../etc/passwd"\n',  # a voice is a name, not a path
        '[cast]\nAlice = {voice = "Cherry", command = "rm -rf /"}\n',
        'base_url = "http://evil.example"\n',
        "[cast]\nAlice = 3\n",
        '[cast]\n"' + "A" * 100 + '" = "Cherry"\n',
        '[cast]\nAlice = {voice = "Cherry", also = [' + ",".join('"x"' for _ in range(40)) + "]}\n",
        "[cast]\n" + "".join(f'n{i} = "Cherry"\n' for i in range(MAX_ENTRIES + 1)),
    ):
        with pytest.raises(CastError):
            Cast.parse(text)
    big = tmp_path / "cast.toml"
    big.write_text("# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(CastError, match="larger than"):
        Cast.load(big)
    assert issubclass(CastError, ConfigError)  # the CLI's exit 2


def test_casts_are_found_like_lexicons(tmp_path: Path) -> None:
    doc = tmp_path / "story.md"
    doc.write_text("x")
    (tmp_path / "cast.toml").write_text('[cast]\nAlice = "Cherry"\nBob = "Ethan"\n')
    (tmp_path / "story.cast.toml").write_text('[cast]\nBob = "Ryan"\n')
    named = tmp_path / "named.toml"
    named.write_text('[cast]\nAlice = "Jennifer"\n')
    files = combined((), str(doc), (named,))
    assert files == (tmp_path / "cast.toml", tmp_path / "story.cast.toml", named)
    cast = Cast.load(*files)
    assert {m.name: m.voice for m in cast.members} == {"Alice": "Jennifer", "Bob": "Ryan"}
    assert combined((), "https://example.org/a", ()) == ()


def test_the_lexicon_respells_each_quotation_for_its_own_voice() -> None:
    from narrator.chunks.lexicon import Lexicon

    lexicon = Lexicon.parse('[[entry]]\nterm = "river"\nsay = "RIVER"\nvoice = ["Ethan"]\n')
    doc = parse_text('"The river," said Bob. The river was wide. "The river?" asked Alice.\n')
    chunks = split_document(doc, lexicon=lexicon, casting=Casting(CAST, "Elias"))
    assert [(c.voice, c.text) for c in chunks] == [
        ("Ethan", '"The RIVER,"'),  # Bob's voice is Ethan: respelled
        ("Elias", "said Bob. The river was wide."),
        ("Cherry", '"The river?"'),
        ("Elias", "asked Alice."),
    ]
    assert chunks[0].written == '"The river,"'  # subtitles show the text as written


def test_a_quotation_and_its_tag_are_closer_than_two_sentences() -> None:
    from narrator.run.narration import chunk_gap_ms
    from narrator.settings import Settings

    settings = Settings(provider="espeak")
    doc = parse_text('"Yes," said Bob. "Come."\n\nThe end.\n')
    chunks = split_document(doc, casting=Casting(CAST, "Elias"))
    gaps = [chunk_gap_ms(settings, a, b) for a, b in pairwise(chunks)]
    assert gaps == [settings.quote_gap_ms, settings.quote_gap_ms, settings.paragraph_gap_ms]
    assert settings.quote_gap_ms < settings.gap_ms
