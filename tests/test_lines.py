"""Line structure in plain text: lists, verse and addresses keep their lines; wrapped
prose stays one paragraph. English, German and Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from narrator.chunks.split import split_document
from narrator.inputs.documents import parse_text

from .conftest import run_cli


def chunks_of(text: str, max_chars: int = 600) -> list[str]:
    return [c.text for c in split_document(parse_text(text), max_chars=max_chars)]


KEPT = {
    "bullets, German": (
        "Während der Schwangerschaft meiden:\n• einige Sorten Weichkäse\n• rohes Fleisch\n"
        "• roher Fisch"
    ),
    "dashes, English": "Pack these:\n- a tent\n- warm socks\n- a torch",
    "numbered, English": "Steps\n1. Open the box\n2. Take out the parts\n3. Read the manual",
    "numbered, German": "Zutaten\n1) drei Eier\n2) etwas Mehl\n3) eine Prise Salz",
    "bullets, Chinese": "孕期应避免：\n• 软奶酪\n• 生肉\n• 生鱼片",
    "numbered, Chinese": "注意事项\n一、按时吃饭\n二、早点睡觉\n三、多喝水",
    "verse, English": "Roses are red,\nViolets are blue,\nSugar is sweet\nAnd so are you",
    "verse, German": "Über allen Gipfeln\nIst Ruh,\nIn allen Wipfeln\nSpürest du",
    "verse, Chinese": "床前明月光，\n疑是地上霜，\n举头望明月，\n低头思故乡",
    "address, English": "Mr John Smith\n42 Baker Street\nLondon NW1 6XE\nUnited Kingdom",
    "address, German": "Frau Erika Mustermann\nHauptstraße 5\n10115 Berlin\nDeutschland",
    "address, Chinese": "北京市朝阳区，\n建国路八十八号，\n张三收",
}


@pytest.mark.parametrize("name", list(KEPT))
def test_lines_that_mean_lines_stay_lines(name: str) -> None:
    text = KEPT[name]
    (chunk,) = chunks_of(text)
    assert chunk.split("\n") == text.split("\n")


WRAPPED = {
    "English": (
        "It was the best of times, it was the worst of times, it was the age of\n"
        "wisdom, it was the age of foolishness, it was the epoch of belief, it was\n"
        "the epoch of incredulity, it was the season of Light, it was the season of\n"
        "Darkness, it was the spring of hope."
    ),
    "German": (
        "Es war einmal ein kleines Mädchen, das wohnte mit seiner Mutter in einem\n"
        "Haus am Rande des großen Waldes, und jeden Tag ging es in den Wald, um\n"
        "Beeren zu sammeln, und die Großmutter freute sich sehr über den Besuch."
    ),
    "Chinese": (
        "从前有一个小女孩，她和妈妈住在森林边上的一座小房子里，每天她都\n"
        "会去森林里采浆果，然后把浆果带给住在森林另一边的奶奶，奶奶非常\n"
        "喜欢她。"
    ),
}


@pytest.mark.parametrize("name", list(WRAPPED))
def test_hard_wrapped_prose_stays_one_paragraph(name: str) -> None:
    (chunk,) = chunks_of(WRAPPED[name])
    assert "\n" not in chunk
    joiner = "" if name == "Chinese" else " "
    assert chunk == joiner.join(WRAPPED[name].split("\n"))


def test_a_wrapped_paragraph_with_a_list_keeps_the_items() -> None:
    text = (
        "For the trip you will need the following things, which we will check at\n"
        "the gate before anyone is allowed to leave the car park in the morning:\n"
        "- a tent\n- boots"
    )
    (chunk,) = chunks_of(text)
    assert chunk.endswith("morning:\n- a tent\n- boots")


def test_a_long_list_is_cut_between_items() -> None:
    items = [f"• item number {i} with a few more words" for i in range(30)]
    chunks = chunks_of("Shopping list\n" + "\n".join(items), max_chars=100)
    assert len(chunks) > 5
    for chunk in chunks[1:]:
        assert chunk.startswith("• item number")
        assert all(line in items for line in chunk.split("\n"))


async def test_the_command_reads_a_list_as_lines(tmp_path: Path) -> None:
    source = tmp_path / "list.txt"
    items = [f"• einige Sorten Weichkäse Nummer {i}" for i in range(12)]
    source.write_text("Meiden\n" + "\n".join(items) + "\n")
    result = await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "l.mp3"), "--provider", "espeak",
        "--cache-dir", str(tmp_path / "c"), "--max-chars", "80", "--subtitles", "srt",
        "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    cues = re.findall(r"\d+\n[\d:,]+ --> [\d:,]+\n(.+)\n", (tmp_path / "l.srt").read_text())
    assert len(cues) > 2
    for cue in cues[1:]:  # every chunk after the first starts at an item, none cut inside
        assert cue.startswith("• einige Sorten")
        assert cue.endswith(tuple(f"Nummer {i}" for i in range(12)))
