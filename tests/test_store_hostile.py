"""A hostile store: the database and the cache folder are data, never authority.

Real SQLite files crafted with bad rows, a garbage file named narrator.sqlite3, a
newer schema, another program's database, links out of the cache; each met by the
commands a user runs (in-process CLI calls; a real process where a paid request is the
point). No traceback, and nothing outside the cache is touched: a canary file beside
the cache survives every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from narrator.cli import main
from narrator.errors import StoreRefused
from narrator.store import Store
from narrator.store.db import FILE_NAME, Database
from narrator.store.verdicts import MEASUREMENT_FIELDS, VERDICT_FIELDS
from narrator.synth.measure import Measurement
from narrator.synth.quality import Verdict
from narrator.util.wav import read_wav_info

from .conftest import TEST_KEY, RunningEmulator, run_cli, run_process
from .stores import StoreBackend

TEXT = (
    "The keeper lit the lamp at dusk. Ships passed in the night without a sound. "
    "By morning the fog had lifted, and the harbour filled with gulls."
)
CANARY = b"RIFF-canary: outside the cache, never to be touched"


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(cache, document, canary): a cache folder, a short document, and a canary file
    beside the cache that must survive every command."""
    cache = tmp_path / "cache"
    document = tmp_path / "doc.txt"
    document.write_text(TEXT, encoding="utf-8")
    canary = tmp_path / "canary.wav"
    canary.write_bytes(CANARY)
    yield cache, document, canary
    assert canary.read_bytes() == CANARY


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``narrator ARGS`` in-process: (exit code, stdout + stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return code, text


def _narrate(cache: Path, document: Path, *flags: str) -> list[str]:
    return [
        "narrate", str(document), "-o", str(document.with_suffix(".wav")), "--provider",
        "espeak", "--max-chars", "60", "--cache-dir", str(cache), "--quiet", *flags,
    ]  # fmt: skip


def _every_command(cache: Path, document: Path) -> list[list[str]]:
    where = ["--cache-dir", str(cache)]
    return [
        _narrate(cache, document),
        ["cache", "info", *where],
        ["cache", "prune", "--max-size", "0", *where],
        ["check", str(document), "--provider", "espeak", "--max-chars", "60", *where],
        ["status", *where],
        ["estimate", str(document), "--provider", "espeak"],
        ["cache", "clear", *where],
    ]


def _rows(cache: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(cache / FILE_NAME)) as db:
        return db.execute(sql, params).fetchall()


@contextlib.contextmanager
def _craft(cache: Path) -> Iterator[sqlite3.Connection]:
    """A connection to write the store by hand: committed and closed at the end."""
    with contextlib.closing(sqlite3.connect(cache / FILE_NAME)) as db, db:
        yield db


# --- the database is not narrator's, or is newer: refused before anything ---------------


def _garbage(cache: Path) -> None:
    cache.mkdir()
    (cache / FILE_NAME).write_bytes(b"this is not a database\n" * 100)


def _foreign(cache: Path) -> None:
    cache.mkdir()
    with _craft(cache) as db:
        db.execute("CREATE TABLE users (name TEXT, password TEXT)")


def _other_program(cache: Path) -> None:
    cache.mkdir()
    with _craft(cache) as db:
        db.execute("PRAGMA application_id = 1234")
        db.execute("CREATE TABLE segments (key TEXT)")


def _newer(cache: Path) -> None:
    Store(cache).close()
    with _craft(cache) as db:
        db.execute("PRAGMA user_version = 99")


def _trigger(cache: Path) -> None:
    Store(cache).close()
    with _craft(cache) as db:
        db.execute(
            "CREATE TRIGGER t AFTER UPDATE ON segments BEGIN "
            "UPDATE segments SET path = '../../x' WHERE key = new.key; END"
        )


def _lacking(cache: Path) -> None:
    cache.mkdir()
    with _craft(cache) as db:
        db.execute("CREATE TABLE segments (key TEXT PRIMARY KEY, state TEXT)")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_garbage, "cannot be read"),
        (_foreign, "it has the table 'users'"),
        (_other_program, "another program's database"),
        (_newer, "made by a newer narrator (schema 99"),
        (_trigger, "it has the trigger 't'"),
        (_lacking, "its table segments lacks"),
    ],
)
def test_a_database_that_is_not_narrators_is_refused_in_one_line_by_every_command(
    place: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], None],
    why: str,
) -> None:
    cache, document, _ = place
    make(cache)
    before = (cache / FILE_NAME).read_bytes()
    for args in _every_command(cache, document):
        code, text = _cli(capsys, *args)
        if args[0] == "estimate":  # reads no store
            assert code == 0, text
            continue
        assert code == 2, (args, text)
        assert why in text and "left as it is" in text, text
        assert len(text.strip().splitlines()) == 1, text
    assert (cache / FILE_NAME).read_bytes() == before  # refused, not repaired or stamped
    assert not document.with_suffix(".wav").exists()


async def test_a_newer_store_is_refused_before_anything_is_paid(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    cache = tmp_path / "cache"
    _newer(cache)
    document = tmp_path / "doc.txt"
    document.write_text(TEXT, encoding="utf-8")
    args = [
        "narrate", str(document), "-o", str(tmp_path / "doc.wav"), "--base-url", emulator.url,
        "--api-key", TEST_KEY, "--cache-dir", str(cache), "--quiet",
    ]  # fmt: skip
    # A real process: the emulator serves on this test's loop.
    result = await run_cli(*args)
    code, err = result.code, result.stderr
    assert code == 2, err
    assert "made by a newer narrator" in err and "Traceback" not in err
    assert "resume" not in err  # nothing was paid: nothing to resume
    assert emulator.stats.requests == 0


def test_a_link_from_the_future_is_no_link(tmp_path: Path, backend: StoreBackend) -> None:
    store = backend.open(tmp_path / "cache")
    try:
        store.begin("k", 3)
        store.record_link("k", "http://x/a.wav")
        assert store.pending_link("k", max_age=60) == "http://x/a.wav"
        backend.sql(store.root, "UPDATE segments SET url_at = 1e18")  # would never age
        assert store.pending_link("k", max_age=60) is None
    finally:
        store.close()


async def test_a_watcher_refuses_a_garbage_store_at_once(tmp_path: Path) -> None:
    cache, inbox = tmp_path / "cache", tmp_path / "inbox"
    _garbage(cache)
    inbox.mkdir()  # empty: without the check it would wait for a document, for ever
    args = ["watch", str(inbox), "-o", str(tmp_path / "out"), "--provider", "espeak",
            "--cache-dir", str(cache)]  # fmt: skip
    result = await asyncio.wait_for(run_cli(*args), timeout=60)
    assert result.code == 2 and "cannot be read" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_store_made_before_the_stamp_is_adopted(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with _craft(cache) as db:  # as an earlier version left it
        db.execute("CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                   "expires REAL NOT NULL)")  # fmt: skip
    Store(cache).close()
    assert _rows(cache, "PRAGMA application_id") == [(0x4E415252,)]
    assert _rows(cache, "PRAGMA user_version") == [(1,)]


# --- rows that name paths outside the cache: never followed -----------------------------


def _hostile_rows(cache: Path, canary: Path, make_wav: Callable[..., Path]) -> dict[str, str]:
    """A narrator store whose downloaded rows name the canary: by ``../``, by an absolute
    path, by a key made of ``../``, and through a link in the segments folder."""
    store = Store(cache)
    store.close()
    link_key = "cc" * 32
    shard = cache / "segments" / "cc"
    shard.mkdir()
    (shard / f"{link_key}.wav").symlink_to(canary)
    rows = {
        "aa" * 32: "../canary.wav",
        "bb" * 32: str(canary),
        "../canary": "segments/../../canary.wav",
        link_key: f"segments/cc/{link_key}.wav",
    }
    with _craft(cache) as db:
        db.executemany(
            "INSERT INTO segments (key, state, billing_chars, path, frames, rate, channels, "
            "width, updated) VALUES (?, 'downloaded', 10, ?, 4, 24000, 1, 2, 0)",
            list(rows.items()),
        )
        db.executemany(
            "INSERT INTO uses (key, document, owner, used) VALUES (?, 'x', 'nobody:1:x', 0)",
            [(key,) for key in rows],
        )
    return rows


def test_rows_naming_files_outside_the_cache_are_never_followed(
    place: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    make_wav: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, document, canary = place
    rows = _hostile_rows(cache, canary, make_wav)
    code, text = _cli(capsys, "cache", "info", "--cache-dir", str(cache))
    assert code == 0 and "0.0 MB  " in text  # the canary's bytes count for nothing
    code, text = _cli(capsys, "cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
    assert code == 0, text
    assert "0 segments removed" in text and "4 rows naming files outside the cache ignored" in text
    assert "outside this cache's segments: ignored" in caplog.text
    assert _rows(cache, "SELECT key FROM segments") == []  # the rows are gone, the files stay
    assert (cache / "segments" / "cc" / f"{'cc' * 32}.wav").is_symlink()
    # The same rows again, met by a run's lookups, its size cap, check and clear.
    with _craft(cache) as db:
        db.execute("DELETE FROM uses")
    rows = _hostile_rows_again(cache, rows)
    for args in _every_command(cache, document):
        code, text = _cli(
            capsys, *args, *(["--cache-max-size", "0"] if args[0] == "narrate" else [])
        )
        assert code in (0, 1), (args, text)  # check finds the book's segments pruned: 1


async def test_a_real_prune_and_run_never_touch_a_file_outside_the_cache(
    place: tuple[Path, Path, Path], make_wav: Callable[..., Path]
) -> None:
    # The same hostile rows, met by real processes: `cache prune` to nothing, then a run
    # whose size cap prunes again. The canary beside the cache survives (the fixture).
    cache, document, canary = place
    _hostile_rows(cache, canary, make_wav)
    pruned = await run_process("cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
    assert pruned.code == 0 and "Traceback" not in pruned.stderr, pruned.stderr
    assert "4 rows naming files outside the cache ignored" in pruned.stdout + pruned.stderr
    run = await run_process(
        "narrate", str(document), "-o", str(cache.parent / "b.wav"), "--provider", "espeak",
        "--cache-dir", str(cache), "--cache-max-size", "0", "--quiet",
    )  # fmt: skip
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr


def _hostile_rows_again(cache: Path, rows: dict[str, str]) -> dict[str, str]:
    with _craft(cache) as db:
        db.executemany(
            "INSERT INTO segments (key, state, billing_chars, path, frames, rate, channels, "
            "width, updated) VALUES (?, 'downloaded', 10, ?, 4, 24000, 1, 2, 0)",
            list(rows.items()),
        )
    return rows


def test_a_lookup_of_a_row_naming_a_file_outside_is_made_again(
    place: tuple[Path, Path, Path], make_wav: Callable[..., Path], backend: StoreBackend
) -> None:
    cache, _, canary = place
    store = backend.open(cache)
    try:
        key = "dd" * 32
        store.begin(key, 10)
        backend.sql(
            cache,
            "UPDATE segments SET state = 'downloaded', path = ?, frames = 1, rate = 1, "
            "channels = 1, width = 2 WHERE key = ?",
            str(canary), key,
        )  # fmt: skip
        assert store.lookup_judged(key) == (None, None)
        assert key in store.unusable
        assert backend.sql(cache, "SELECT state, path FROM segments") == [("pending", None)]
        store.discard(key)  # nothing to delete: the row no longer names anything
    finally:
        store.close()


@pytest.mark.parametrize("own", ["segments", "segments/tmp", "segments/qa", "reserve"])
def test_a_link_where_the_store_keeps_its_files_refuses_the_store(
    place: tuple[Path, Path, Path], own: str
) -> None:
    cache, _, canary = place
    (cache / "segments").mkdir(parents=True, exist_ok=own == "segments")
    if own == "segments":
        (cache / "segments").rmdir()
    (cache / own).symlink_to(canary.parent if own != "reserve" else canary)
    with pytest.raises(StoreRefused, match="is a link"):
        Store(cache)


def test_a_shard_folder_that_is_a_link_is_replaced_never_written_through(
    place: tuple[Path, Path, Path], make_wav: Callable[..., Path], backend: StoreBackend
) -> None:
    cache, _, canary = place
    outside = canary.parent / "outside"
    outside.mkdir()
    key = "ee" * 32
    store = backend.open(cache)
    try:
        (cache / "segments" / "ee").symlink_to(outside)
        segment = store.commit_bytes(key, make_wav().read_bytes())
        assert segment.path.parent.is_dir() and not segment.path.parent.is_symlink()
        store.drop_segment(key)
        store.clear()
    finally:
        store.close()
    assert list(outside.iterdir()) == []


# --- rows of the wrong shape: read as nothing -----------------------------------------------


def test_rows_of_the_wrong_shape_are_read_as_nothing(
    place: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    make_wav: Callable[..., Path],
) -> None:
    cache, document, _ = place
    assert _cli(capsys, *_narrate(cache, document))[0] == 0
    with _craft(cache) as db:
        db.execute("UPDATE verdicts SET verdict = '{\"kind\": 1}', best = '[[[['")
        db.execute("UPDATE verdicts SET measurement = 'not json' WHERE rowid % 2 = 0")
        db.execute("INSERT INTO claims VALUES ('k', 'here:99999999999999999999:x', 1e300)")
        db.execute("UPDATE book_files SET path = '/etc/passwd'")
        db.execute(
            "INSERT INTO watch_queue VALUES ('in', 'out', 'waiting', '', '{\"a\":', 0), "
            "('in2', 'out2', 'waiting', '', '[1, 2]', 'soon'), "
            "('in3', 'out3', 'in progress', '', '[\"k\"]', 1)"
        )
        db.execute("INSERT INTO segments (key, state, billing_chars, updated) "
                   "VALUES ('neg', 'downloaded', -100000000, 1e18)")  # fmt: skip
    # The book's recorded file is elsewhere: not up to date, made again (from the store).
    code, text = _cli(capsys, *_narrate(cache, document))
    assert code == 0, text
    assert _rows(cache, "SELECT path FROM book_files") == [
        (str(document.with_suffix(".wav").absolute()),)
    ]
    code, text = _cli(capsys, "status", "--cache-dir", str(cache))
    assert code == 0 and "in3" in text and "in2" not in text, text


def test_the_verdict_fields_the_store_reads_are_the_gates() -> None:
    assert set(VERDICT_FIELDS) == {f.name for f in dataclasses.fields(Verdict)}
    assert set(MEASUREMENT_FIELDS) == {f.name for f in dataclasses.fields(Measurement)}


# --- a corrupt segment: dropped, made again; check reports it and --fix repairs it ------


def _segment_files(cache: Path) -> list[Path]:
    return sorted((cache / "segments").glob("??/*.wav"))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_segment_is_dropped_and_made_again(
    place: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    cache, document, _ = place
    assert _cli(capsys, *_narrate(cache, document))[0] == 0
    files = _segment_files(cache)
    assert len(files) >= 2
    whole = files[0].read_bytes()
    broken = whole[: len(whole) // 2] if damage == "truncated" else b"\0" * len(whole)
    files[0].write_bytes(broken)
    check = ["check", str(document), "--provider", "espeak", "--max-chars", "60",
             "--cache-dir", str(cache)]  # fmt: skip
    code, text = _cli(capsys, *check)
    assert code == 1 and "1 corrupt (--fix makes them again)" in text, text
    assert "is corrupt" in caplog.text
    code, text = _cli(capsys, *check, "--fix", "--quiet")
    assert code == 0, text
    assert read_wav_info(files[0]).frames > 0  # whole again
    code, text = _cli(capsys, *check)
    assert code == 0 and "corrupt (" not in text, text
    # The same in a run: the book made again uses the segment made again.
    files[1].write_bytes(files[1].read_bytes()[:100])
    document.with_suffix(".wav").unlink()
    code, text = _cli(capsys, *_narrate(cache, document))
    assert code == 0, text
    store = Store(cache)
    try:
        assert store.lookup(files[1].stem) is not None
    finally:
        store.close()


def test_a_database_is_opened_in_one_place() -> None:
    import narrator

    package = Path(narrator.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        if source.parent.name != "store" or source.name not in ("db.py", "__init__.py"):
            assert "sqlite3.connect" not in text, source
            assert FILE_NAME not in text, source
        if source.parent.name != "store" or source.name != "postgres.py":
            assert "psycopg.connect" not in text, source
    assert Database.__module__ == "narrator.store.db"
