"""The first requests leave while the rest of the text is still being split."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import narrator
from narrator.chunks.split import Chunk, iter_chunks
from narrator.inputs.documents import parse_text
from narrator.run import early, plan
from narrator.run.results import Work
from narrator.synth.providers import make_provider
from narrator.tools.emulator import RunningEmulator

from .conftest import TEST_KEY

TEXT = "\n\n".join(f"Paragraph {n} has a sentence. And another one here." for n in range(12))


async def test_the_first_request_leaves_before_the_split_ends(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_mid_split = threading.Event()

    def held(*args: Any, **kwargs: Any) -> Iterator[Chunk]:
        # The splitter stops after its first chunks until the service has a request
        # (bounded: without the early start nothing arrives and the test fails).
        chunks = iter_chunks(*args, **kwargs)
        yield from (next(chunks), next(chunks))
        give_up = time.monotonic() + 20
        while emulator.stats.requests == 0 and time.monotonic() < give_up:
            time.sleep(0.01)
        if emulator.stats.requests:
            seen_mid_split.set()
        yield from chunks

    monkeypatch.setattr(plan, "iter_chunks", held)
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
