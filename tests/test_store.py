"""The segment store, on each backend (SQLite, and PostgreSQL: tests/stores.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from narrator.errors import AudioError
from narrator.store import Store, segment_key

from .stores import StoreBackend


@pytest.fixture
def store(tmp_path: Path, backend: StoreBackend) -> Store:
    s = backend.open(tmp_path / "cache")
    yield s  # type: ignore[misc]
    s.close()


def test_key_depends_on_everything_that_changes_the_audio() -> None:
    base = {
        "provider": "aimlapi|https://api.aimlapi.com/v1/tts|m",
        "voice": "Cherry",
        "text": "Hi.",
    }
    key = segment_key(**base)
    assert key == segment_key(**base)
    for field, other in (("provider", "espeak|espeak-ng"), ("voice", "Ethan"), ("text", "Hi!")):
        assert segment_key(**{**base, field: other}) != key


async def test_commit_moves_a_checked_file_into_place(
    store: Store, make_wav: Callable[..., Path]
) -> None:
    key = "ab" + "0" * 62
    store.begin(key, 10)
    temp = store.temp_path(key)
    temp.write_bytes(make_wav(0.25).read_bytes())
    segment = store.commit(key, temp)
    assert not temp.exists()
    assert segment.path == store.root / "segments" / "ab" / f"{key}.wav"
    assert segment.frames == 6000 and segment.rate == 24000
    assert store.lookup(key) == segment


async def test_a_broken_file_is_refused_and_not_kept(store: Store) -> None:
    key = "cd" + "0" * 62
    store.begin(key, 10)
    temp = store.temp_path(key)
    temp.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AudioError):
        store.commit(key, temp)
    assert store.lookup(key) is None and not temp.exists()


async def test_a_deleted_file_is_noticed(store: Store, make_wav: Callable[..., Path]) -> None:
    key = "ef" + "0" * 62
    store.begin(key, 10)
    segment = store.commit_bytes(key, make_wav().read_bytes())
    segment.path.unlink()
    assert store.lookup(key) is None


def test_links_persist_and_age(store: Store, tmp_path: Path, backend: StoreBackend) -> None:
    store.begin("k", 3)
    store.record_link("k", "http://x/a.wav")
    store.close()
    again = backend.open(tmp_path / "cache")
    try:
        assert again.pending_link("k", max_age=60) == "http://x/a.wav"
        assert again.pending_link("k", max_age=-1) is None
        again.forget_link("k")
        assert again.pending_link("k", max_age=60) is None
    finally:
        again.close()


async def test_state_is_plain_sqlite_in_wal_mode(
    tmp_path: Path, make_wav: Callable[..., Path]
) -> None:
    store = Store(tmp_path / "cache")
    store.begin("k1", 5)
    store.record_failure("k1", "boom")
    store.commit_bytes("k2" + "0" * 62, make_wav().read_bytes())
    store.close()
    db = sqlite3.connect(store.root / "narrator.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = dict(db.execute("SELECT key, state FROM segments"))
    finally:
        db.close()
    assert rows == {"k1": "failed", "k2" + "0" * 62: "downloaded"}


async def test_info_and_clear(store: Store, make_wav: Callable[..., Path]) -> None:
    store.commit_bytes("aa" + "1" * 62, make_wav().read_bytes())
    store.begin("bb", 1)
    info = store.info()
    assert info.files == 1 and info.states == {"downloaded": 1, "pending": 1} and info.bytes > 0
    store.clear()
    info = store.info()
    assert info.files == 0 and info.states == {}


async def test_prune_drops_this_caches_files_and_a_shared_store_keeps_other_machines_rows(
    tmp_path: Path, backend: StoreBackend, make_wav: Callable[..., Path]
) -> None:
    here, there = backend.open(tmp_path / "here"), backend.open(tmp_path / "there")
    try:
        mine, theirs = "aa" + "2" * 62, "bb" + "3" * 62
        there.commit_bytes(theirs, make_wav().read_bytes())  # the least recently used
        here.commit_bytes(mine, make_wav().read_bytes())
        here.note_run({"book.m4a": [mine]})
        (usage,) = here.usage()
        assert (usage.document, usage.segments) == ("book.m4a", 1) and usage.bytes > 0
        assert here.prune(max_bytes=0).kept_live == 1  # a run in progress uses it
        here.close()
        here = backend.open(tmp_path / "here")  # that run is over
        pruned = here.prune(max_bytes=0)
        assert pruned.removed == 1 and here.lookup(mine) is None
        # SQLite: two folders are two stores. PostgreSQL: one store, two machines' files.
        assert there.lookup(theirs) is not None
    finally:
        here.close()
        there.close()
