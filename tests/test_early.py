"""The first requests leave while the rest of the text is still being split."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import narrator
from narrator.chunks.split import Chunk, iter_chunks, split_document
from narrator.errors import LexiconError
from narrator.estimate import estimate, most_cost
from narrator.inputs.documents import load_document, parse_text
from narrator.run import early, plan
from narrator.run.results import Work
from narrator.synth.providers import make_provider
from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY

TEXT = "\n\n".join(f"Paragraph {n} has a sentence. And another one here." for n in range(12))


def hold_the_split(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The splitter stops after its first two chunks until the service has a request
    (bounded: without the early start nothing arrives and the test fails); the event is
    set when one came while the split was held."""
    seen_mid_split = threading.Event()

    def held(*args: Any, **kwargs: Any) -> Iterator[Chunk]:
        chunks = iter_chunks(*args, **kwargs)
        yield from (next(chunks), next(chunks))
        give_up = time.monotonic() + 20
        while emulator.stats.requests == 0 and time.monotonic() < give_up:
            time.sleep(0.01)
        if emulator.stats.requests:
            seen_mid_split.set()
        yield from chunks

    monkeypatch.setattr(plan, "iter_chunks", held)
    return seen_mid_split


async def test_the_first_request_leaves_before_the_split_ends(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_mid_split = hold_the_split(emulator, monkeypatch)
    source = tmp_path / "a.txt"
    source.write_text(TEXT, encoding="utf-8")
    settings = narrator.Settings(
        api_key=TEST_KEY, base_url=emulator.url, cache_dir=tmp_path / "c", rpm=6000, max_chars=60
    )
    report = await narrator.narrate(source, tmp_path / "a.wav", settings)
    assert seen_mid_split.is_set()
    assert report.status == "done" and report.chunks == 12
    # Sent early or not, each chunk was asked for once.
    assert emulator.stats.requests == report.requests == 12


def test_no_early_start_for_a_book_that_may_be_up_to_date(tmp_path: Path) -> None:
    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "c")
    provider = make_provider(settings)
    work = Work(parse_text(TEXT), tmp_path / "book.m4b")
    assert early._safe([work], settings, provider)
    (tmp_path / "book-01.m4b").write_bytes(b"a part of it")  # split into parts before
    assert not early._safe([work], settings, provider)
    (tmp_path / "book-01.m4b").unlink()
    (tmp_path / "book.m4b").write_bytes(b"the book")
    assert not early._safe([work], settings, provider)


async def test_a_chunk_sent_early_is_read_in_its_own_voice(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_mid_split = hold_the_split(emulator, monkeypatch)
    cast = tmp_path / "cast.toml"
    cast.write_text('[cast]\nAlice = "Ethan"\n', encoding="utf-8")
    # The first two chunks, sent before the split goes on: Alice's words, then the narrator's.
    text = '"Hello there," said Alice.\n\n' + TEXT
    source = tmp_path / "a.txt"
    source.write_text(text, encoding="utf-8")
    settings = narrator.Settings(
        api_key=TEST_KEY,
        base_url=emulator.url,
        cache_dir=tmp_path / "c",
        rpm=6000,
        max_chars=60,
        voice="Cherry",
        cast=(cast,),
    )
    report = await narrator.narrate(source, tmp_path / "a.wav", settings)
    assert seen_mid_split.is_set() and report.status == "done"
    chunks = split_document(parse_text(text), max_chars=60, casting=plan.casting_for(settings, "-"))
    assert [c.voice for c in chunks[:2]] == ["Ethan", "Cherry"]
    voices = Counter(c.voice for c in chunks)
    assert emulator.stats.voices == voices and emulator.stats.requests == len(chunks)


def test_the_guards_bound_is_never_under_the_estimate(tmp_path: Path) -> None:
    lexicon = tmp_path / "words.toml"
    lexicon.write_text('[words]\nsentence = "string of words"\n', encoding="utf-8")
    docs = [parse_text(TEXT), parse_text("Short one.")]
    most = most_cost(docs, lexicons=(lexicon,))
    assert most >= estimate(docs, lexicons=(lexicon,)).cost > estimate(docs).cost
    # A respelling over its budget: only the split can tell, so the guard splits.
    assert most_cost(docs, lexicons=(lexicon,), max_text_chars=100) == math.inf


def test_a_bad_lexicon_is_refused_before_any_chunk_is_offered(tmp_path: Path) -> None:
    # The early start sends what plan_all offers: every lexicon is read before any cut.
    good, bad = tmp_path / "a.txt", tmp_path / "b.txt"
    good.write_text(TEXT, encoding="utf-8")
    bad.write_text(TEXT, encoding="utf-8")
    (tmp_path / "b.lexicon.toml").write_text("[words\n", encoding="utf-8")
    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "c")
    planner = plan.Planner(settings, make_provider(settings))
    works = [Work(load_document(p), p.with_suffix(".wav")) for p in (good, bad)]
    offered: list[str] = []
    with pytest.raises(LexiconError):
        planner.plan_all(works, on_chunk=lambda _, chunk, key: offered.append(key))
    assert offered == []
    # Told to leave it out (as watch is), the good document is cut and offered in order.
    failed: list[Any] = []
    plans = planner.plan_all(
        works, failed, (LexiconError,), on_chunk=lambda _, c, key: offered.append(key)
    )
    assert [p.work for p in plans] == works[:1] and [f[0] for f in failed] == works[1:]
    assert offered == plans[0].keys
