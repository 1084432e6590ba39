"""``narrator watch``: the real process on an inbox folder, against the loopback emulator.

Every wait is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from narrator.errors import ConfigError
from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator
from narrator.watch.schedule import parse_until
from narrator.watch.watcher import is_temporary

from .conftest import TEST_KEY, run_cli

BOUND = 60.0  # seconds any one wait may take before the test fails

TEXT = " ".join(f"Sentence {i} of a short article, read aloud." for i in range(12))


class Watcher:
    """A ``narrator watch`` process and the lines it has written to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, inbox: Path, out: Path, url: str, cache: Path, *extra: str) -> Watcher:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_KEY")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator", "watch", str(inbox), "-o", str(out),
            "--base-url", url, "--api-key", TEST_KEY, "--cache-dir", str(cache),
            "--rpm", "6000", "--max-chars", "80", "--settle", "1.5", "--quiet", *extra,
            env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode().rstrip("\n"))
            self.changed.set()

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]

    async def until(self, pattern: str, count: int = 1) -> list[str]:
        """Wait (bounded) until ``count`` lines match ``pattern``."""
        try:
            async with asyncio.timeout(BOUND):
                await self._until(pattern, count)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} yet:\n" + "\n".join(self.lines)) from None
        return self.matching(pattern)

    async def _until(self, pattern: str, count: int) -> None:
        while len(self.matching(pattern)) < count:
            self.changed.clear()
            if self.proc.returncode is not None:
                raise AssertionError("watcher exited:\n" + "\n".join(self.lines))
            waiter = asyncio.ensure_future(self.changed.wait())
            await asyncio.wait([waiter], timeout=0.5)
            waiter.cancel()

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(BOUND):
            code = await self.proc.wait()
            await self.reader
        return code


def requests_of(line: str) -> int:
    found = re.search(r"(\d+) requests?\b", line)
    assert found, line
    return int(found.group(1))


def test_temporary_names() -> None:
    for name in (".draft.txt", "a.txt~", "a.txt.part", "a.txt.tmp", ".#a.txt", "~$a.txt"):
        assert is_temporary(Path(name)), name
    assert not is_temporary(Path("article.txt"))


async def test_empty_inbox_then_files_slow_writer_and_sigterm(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    hook = tmp_path / "done.log"
    watcher = await Watcher.start(
        inbox, out, emulator.url, tmp_path / "cache",
        "--on-done", f'echo "$NARRATOR_BOOK" >> {hook}; exit 3',
    )  # fmt: skip
    try:
        await watcher.until("^watching")
        (inbox / "copied.txt").write_text(TEXT)
        (inbox / ".hidden.txt").write_text("Never read, it is hidden.")
        (inbox / "draft.txt.part").write_text("Never read, it is a partial download.")
        await watcher.until(r"^done: .*copied\.txt")
        # Written in pieces, each well inside the settle time: read once, complete.
        pieces = TEXT.split(". ")
        with (inbox / "slow.txt").open("w") as slow:
            for piece in pieces:
                slow.write(piece + ". ")
                slow.flush()
                await asyncio.sleep(0.1)
        await watcher.until(r"^done: .*slow\.txt")
        (inbox / "last.txt").write_text("The last one, after the slow one.")
        await watcher.until(r"^done: .*last\.txt")
    finally:
        code = await watcher.stop()
    assert code == 0, watcher.lines
    assert watcher.lines[-1] == "narrator: watcher stopped"
    assert len(watcher.matching(r"slow\.txt")) == 1, watcher.lines
    assert not watcher.matching(r"hidden|draft"), watcher.lines
    assert sorted(p.name for p in out.iterdir()) == ["copied.wav", "last.wav", "slow.wav"]
    # The slow file's book holds all of it: its chunks are the whole text's.
    slow_chars = int(re.search(r"(\d+) characters", watcher.matching("slow")[0]).group(1))  # type: ignore[union-attr]
    copied_chars = int(re.search(r"(\d+) characters", watcher.matching("copied")[0]).group(1))  # type: ignore[union-attr]
    assert slow_chars >= copied_chars - len(pieces)
    # The hook ran once per book, and its failure (exit 3) did not stop the watcher.
    assert sorted(hook.read_text().split()) == sorted(
        str(out / n) for n in ("copied.wav", "last.wav", "slow.wav")
    )
    assert len(watcher.matching("--on-done exited 3")) == 3


async def test_restart_pays_nothing_twice(emulator: RunningEmulator, tmp_path: Path) -> None:
    inbox, out, cache = tmp_path / "inbox", tmp_path / "out", tmp_path / "cache"
    inbox.mkdir()
    (inbox / "a.txt").write_text(TEXT)
    (inbox / "sub").mkdir()
    (inbox / "sub" / "b.md").write_text("# B\n\n" + TEXT.replace("Sentence", "Line"))
    first = await Watcher.start(inbox, out, emulator.url, cache)
    try:
        done = await first.until(r"^done: ", 2)
    finally:
        assert await first.stop() == 0
    paid = emulator.stats.requests
    assert paid == sum(requests_of(line) for line in done) > 0
    assert (out / "sub" / "b.wav").exists()
    (inbox / "a.txt").unlink()  # a document deleted from the inbox keeps its book

    second = await Watcher.start(inbox, out, emulator.url, cache)
    try:
        again = await second.until(r"^up-to-date: ")
    finally:
        assert await second.stop() == 0
    assert [requests_of(line) for line in again] == [0]
    assert emulator.stats.requests == paid
    assert (out / "a.wav").exists()


async def test_two_watchers_bill_each_chunk_once(emulator: RunningEmulator, tmp_path: Path) -> None:
    inbox, cache = tmp_path / "inbox", tmp_path / "cache"
    inbox.mkdir()
    one = await Watcher.start(inbox, tmp_path / "out", emulator.url, cache)
    two = await Watcher.start(inbox, tmp_path / "out", emulator.url, cache)
    try:
        await one.until("^watching")
        await two.until("^watching")
        for n in range(3):
            (inbox / f"doc{n}.txt").write_text(TEXT.replace("short", f"short number {n}"))
        await one.until(r"^(done|up-to-date): ", 3)
        await two.until(r"^(done|up-to-date): ", 3)
    finally:
        codes = (await one.stop(), await two.stop())
    assert codes == (0, 0)
    assert emulator.stats.billed and set(emulator.stats.billed.values()) == {1}, (
        emulator.stats.billed
    )
    lines = one.matching("^(done|up-to-date)") + two.matching("^(done|up-to-date)")
    assert sum(requests_of(line) for line in lines) == emulator.stats.requests


async def test_budget_per_day_holds_across_a_restart(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    inbox, out, cache = tmp_path / "inbox", tmp_path / "out", tmp_path / "cache"
    inbox.mkdir()
    for n in range(3):
        (inbox / f"doc{n}.txt").write_text(TEXT.replace("short", f"short number {n}"))
    # One dollar per character: the budget, in characters, fits one document, not two.
    size = len(TEXT) + 20
    budget = ["--price-per-10k-chars", "10000", "--budget-per-day", str(size * 3 // 2)]
    first = await Watcher.start(inbox, out, emulator.url, cache, *budget)
    try:
        await first.until(r"^done: ")
        await first.until(r"waiting for budget: .*doc", 2)
        # From another process, while the watcher runs: the queue, from the store.
        status = await run_cli("status", "--store", str(cache))
    finally:
        assert await first.stop() == 0
    paid = emulator.stats.billed_characters
    assert 0 < paid <= size * 3 // 2
    assert len(first.matching("^done: ")) == 1
    assert status.code == 0, status.stderr
    rows = status.stdout.splitlines()
    assert rows[-1] == "1 done, 2 waiting for budget", status.stdout
    assert len([r for r in rows if re.match(r"done\s+100%  .*doc\d\.txt$", r)]) == 1, rows
    waiting = [r for r in rows if re.match(r"waiting for budget\s+0%  .*doc\d\.txt$", r)]
    assert len(waiting) == 2, rows

    second = await Watcher.start(inbox, out, emulator.url, cache, *budget)
    try:
        # The book made is up to date (free); the other two still wait: the store
        # remembers what the last 24 hours cost.
        await second.until(r"^up-to-date: ")
        await second.until(r"waiting for budget: .*doc", 2)
    finally:
        assert await second.stop() == 0
    assert emulator.stats.billed_characters == paid
    assert not second.matching("^done: ")
    assert len(list(out.iterdir())) == 1


def test_parse_until() -> None:
    evening = datetime.datetime(2026, 3, 1, 23, 0, tzinfo=datetime.UTC)
    morning = datetime.datetime(2026, 3, 2, 7, 0, tzinfo=datetime.UTC)
    assert parse_until("07:00", evening) == morning.timestamp()
    assert parse_until("23:30", evening) == evening.timestamp() + 1800
    assert parse_until("8h", evening) == morning.timestamp()
    assert parse_until("2h30m", evening) == evening.timestamp() + 9000
    for bad in ("25:00", "soon", "", "7:60", "h"):
        with pytest.raises(ConfigError, match="--until"):
            parse_until(bad, evening)


def sentences(n: int, word: str) -> str:
    return " ".join(f"{word} sentence {i} is read aloud here." for i in range(n))


async def test_until_starts_only_what_finishes_then_stops(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    inbox, out, cache = tmp_path / "inbox", tmp_path / "out", tmp_path / "cache"
    inbox.mkdir()
    # By name the long one comes first; shortest first, the two short ones fit.
    (inbox / "a-long.txt").write_text(sentences(120, "Long"))
    (inbox / "b-short.txt").write_text(sentences(3, "Short"))
    (inbox / "c-medium.txt").write_text(sentences(6, "Medium"))
    # 120 requests a minute: about half a second a request, so the long one (60
    # requests of two sentences, about 30 s) cannot finish in 15 s and is not started.
    pace = ["--rpm", "120", "--assume-latency", "0.2", "--until", "15s"]
    watcher = await Watcher.start(inbox, out, emulator.url, cache, *pace)
    done = await watcher.until(r"^done: ", 2)
    status = await run_cli("status", "--store", str(cache))
    async with asyncio.timeout(BOUND):  # it stops by itself at the deadline
        code = await watcher.proc.wait()
        await watcher.reader
    assert code == 0, watcher.lines
    assert watcher.matching("deadline is reached"), watcher.lines
    assert sorted(p.name for p in out.iterdir()) == ["b-short.wav", "c-medium.wav"]
    short = sum(requests_of(line) for line in done)
    assert emulator.stats.requests == short  # nothing of the long one was paid for
    assert re.search(r"^waiting for deadline\s+0%  .*a-long\.txt$", status.stdout, re.M)

    # The next night, without a deadline: the long one, and only it, is narrated.
    again = await Watcher.start(inbox, out, emulator.url, cache, "--rpm", "6000")
    try:
        (long,) = await again.until(r"^done: .*a-long")
    finally:
        assert await again.stop() == 0
    assert requests_of(long) >= 30
    assert emulator.stats.requests == short + requests_of(long)
    assert set(emulator.stats.billed.values()) == {1}


async def test_a_watched_document_is_split_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher weighs each document's cost from its plan, then narrates that plan.
    from narrator.chunks import split
    from narrator.settings import Settings
    from narrator.watch.watcher import WatchOptions, watch

    cuts: list[str] = []
    real = split.segmenter_for  # called once per document split

    def counted(lang: str) -> object:
        cuts.append(lang)
        return real(lang)

    monkeypatch.setattr(split, "segmenter_for", counted)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.txt").write_text(TEXT)
    stop = asyncio.Event()
    reports = []

    def on_report(report: object) -> None:
        reports.append(report)
        stop.set()

    settings = Settings(provider="espeak", cache_dir=tmp_path / "c", max_chars=80, lang="en")
    async with asyncio.timeout(BOUND):
        await watch(
            inbox, tmp_path / "out", settings, stop=stop,
            options=WatchOptions(settle=0.0), on_report=on_report,
        )  # fmt: skip
    assert [getattr(r, "status", None) for r in reports] == ["done"]
    assert cuts == ["en"]


async def test_a_short_book_is_announced_as_soon_as_it_is_written(tmp_path: Path) -> None:
    """Three documents ready together, of very different lengths: each book's line, its
    hook and its row in `status` come when that book is written, not the longest's."""
    inbox, out, cache = tmp_path / "inbox", tmp_path / "out", tmp_path / "cache"
    inbox.mkdir()
    (inbox / "long.txt").write_text(sentences(200, "Long"))
    (inbox / "medium.txt").write_text(sentences(3, "Medium"))
    (inbox / "short.txt").write_text(sentences(1, "Short"))
    hook = tmp_path / "hook.log"
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.2))
    try:
        watcher = await Watcher.start(
            inbox, out, emulator.url, cache, "--concurrency", "2",
            "--on-done", f'echo "$NARRATOR_INPUT" >> {hook}',
        )  # fmt: skip
        try:
            await watcher.until(r"^done: .*short\.txt")
            await watcher.until(r"^done: .*medium\.txt")
            status = await run_cli("status", "--store", str(cache))
            async with asyncio.timeout(BOUND):  # the hook runs just after the line
                while not hook.exists() or len(hook.read_text().split()) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            long_done = watcher.matching(r"^done: .*long\.txt")
        finally:
            await watcher.stop()
    finally:
        await emulator.close()
    assert not long_done, watcher.lines  # the long one was still being read
    # Stopped in the middle of the long book: nothing of it is left behind, hidden or not.
    assert sorted(p.name for p in out.iterdir()) == ["medium.wav", "short.wav"]
    assert sorted(Path(p).name for p in hook.read_text().split()) == ["medium.txt", "short.txt"]
    assert re.search(r"^done\s+100%  .*short\.txt$", status.stdout, re.M), status.stdout
    assert re.search(r"^in progress\s+\d+%  .*long\.txt$", status.stdout, re.M), status.stdout


async def test_one_document_never_stops_the_watcher(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """A document whose lexicon is broken fails, with why; one whose name is not UTF-8
    does not make the watcher deaf; the others are narrated."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "broken.txt").write_text(TEXT)
    (inbox / "broken.lexicon.toml").write_text("[words\nnot = toml")
    watcher = await Watcher.start(inbox, out, emulator.url, tmp_path / "cache")
    try:
        (failed,) = await watcher.until(r"^failed: .*broken\.txt")
        (inbox / "fine.txt").write_text(TEXT.replace("short", "fine"))
        await watcher.until(r"^done: .*fine\.txt")
        name = os.fsencode(inbox) + b"/caf\xe9-latin1.txt"  # written by a Latin-1 system
        Path(os.fsdecode(name)).write_bytes(TEXT.replace("short", "odd").encode())
        await asyncio.sleep(0.5)  # the notification of that name comes (and fails) first
        (inbox / "after.txt").write_text(TEXT.replace("short", "later"))
        await watcher.until(r"^done: .*after\.txt")
        await watcher.until(r"^(done|failed): .*latin1\.txt")
    finally:
        code = await watcher.stop()
    assert code == 0, watcher.lines
    assert "lexicon" in failed and "broken.lexicon.toml" in failed, failed
    assert not watcher.matching("Traceback"), watcher.lines
    assert watcher.matching(r"looking every \d+ s instead"), watcher.lines
    assert watcher.lines[-1] == "narrator: watcher stopped"


async def test_sigterm_does_not_wait_for_a_long_lexicon_budget(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """A runaway pattern in a document of 2 MB has a budget of about 21 s of CPU before it
    fails the document; a stop in the meantime leaves the stuck planning behind at once
    rather than waiting it out (the document is never reported failed: it was never
    finished)."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    filler = "\n\n".join("Plain words, nothing to respell here." for _ in range(50_000))
    (inbox / "trap.txt").write_text("a" * 40 + "!\n\n" + filler)
    (inbox / "trap.lexicon.toml").write_text(
        '[[entry]]\nterm = "(a|aa)+$"\nsay = "x"\nregex = true\nwhole_word = false\n'
    )
    watcher = await Watcher.start(inbox, out, emulator.url, tmp_path / "cache")
    await watcher.until("^watching")
    await asyncio.sleep(4)  # settled (1.5 s), read, and stuck in the pattern
    code = await watcher.stop()
    assert code == 0, watcher.lines
    assert watcher.lines[-1] == "narrator: watcher stopped", watcher.lines
    assert not watcher.matching(r"trap\.txt"), watcher.lines  # abandoned, not failed
    assert emulator.stats.requests == 0


async def test_sigterm_stops_the_watcher_while_a_stage_is_stuck(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """A lexicon pattern that backtracks for ever (a shared inbox is where one arrives;
    `(a|aa)+$` is catastrophic for the regex engine too): SIGTERM still stops the
    watcher, cleanly, and the trap is never sent."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "trap.txt").write_text("a" * 40 + "!")
    (inbox / "trap.lexicon.toml").write_text(
        '[[entry]]\nterm = "(a|aa)+$"\nsay = "x"\nregex = true\nwhole_word = false\n'
    )
    watcher = await Watcher.start(inbox, out, emulator.url, tmp_path / "cache")
    await watcher.until("^watching")
    await asyncio.sleep(4)  # settled (1.5 s), read, and being cut: stuck in the pattern
    code = await watcher.stop()
    assert code == 0, watcher.lines
    assert watcher.lines[-1] == "narrator: watcher stopped", watcher.lines
    assert emulator.stats.requests == 0
