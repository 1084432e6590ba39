"""The trust model: every command, flag, setting and source is classified, and what a
found settings file or lexicon may not do, it cannot (real processes where the point is
what a user's shell sees, in-process ``main`` where a process proves nothing)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from narrator.chunks import bounds
from narrator.chunks.bounds import Budget
from narrator.chunks.lexicon import Lexicon
from narrator.cli import main
from narrator.cli.build import report_command
from narrator.cli.config import option_names
from narrator.cli.parser import build_parser
from narrator.errors import InputError
from narrator.inputs.limits import DEFAULT_MAX_TEXT_BYTES
from narrator.settings import AudiobookOptions, Settings, default
from narrator.tools.emulator import RunningEmulator
from narrator.util.trust import COMMANDS, FLAGS, FROM_NO_FILE, SETTINGS, SOURCES, Kind
from narrator.util.wav import tone_pcm, wav_bytes

from .conftest import run_cli
from .test_watch import Watcher

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-trust-0123456789abcdef"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)}


# --- the table is complete --------------------------------------------------------------


def test_every_command_is_classified() -> None:
    commands = _commands()
    assert sorted(commands) == sorted(COMMANDS)
    for name, parser in commands.items():
        reads_file = {"config", "trust_settings"} & _dests(parser)
        # A command reads a settings file exactly when it takes --config and --trust-settings.
        assert bool(reads_file) == COMMANDS[name].settings_file, name
        assert len(reads_file) in (0, 2), name
        rows = [s.name for s in SOURCES]
        for source in COMMANDS[name].sources:
            assert any(row.startswith(source) for row in rows), (name, source)


def test_every_flag_and_settings_key_is_classified() -> None:
    dests = set().union(*(_dests(p) for p in _commands().values()))
    assert sorted(dests - set(FLAGS)) == [], "classify these flags in narrator/util/trust.py"
    assert sorted(set(FLAGS) - dests) == [], "these are classified but no command has them"
    # Every key a settings file may hold is a flag classified as settable from a file.
    keys = set().union(*(option_names(p) for p in _commands().values()))
    assert keys <= set(FLAGS)
    assert not {k for k in keys if FLAGS[k] in FROM_NO_FILE}


def test_every_library_setting_is_classified() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    fields |= {f"audiobook.{f.name}" for f in dataclasses.fields(AudiobookOptions)}
    assert sorted(fields ^ set(SETTINGS)) == [], "classify these in narrator/util/trust.py"
    assert default("max_text_bytes") == DEFAULT_MAX_TEXT_BYTES


def test_docs_hold_the_table() -> None:
    docs = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith("| ")]
    for source in SOURCES:
        assert any(row.startswith(f"| {source.name} |") for row in rows), source.name
    for kind in Kind:
        assert f"`{kind.name.lower()}`" in docs, kind
    for name in COMMANDS:
        assert f"`{name}`" in docs, name
    # The README's Security section shows the same table, row for row.
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("## Security", 1)[1]
    shown = [line for line in readme.split("\n## ", 1)[0].splitlines() if line.startswith("| ")]
    for source in SOURCES:
        row = f"| {source.name} | {source.may} | {source.never} | {source.bounded_by} |"
        assert row in shown, source.name


@pytest.mark.parametrize("key", sorted(k for k, kind in FLAGS.items() if kind in FROM_NO_FILE))
def test_no_file_sets_a_guard_a_secret_or_an_input(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("Hello.")
    (tmp_path / "mine.toml").write_text(f"{key} = true\n")
    assert main(["estimate", "t.txt", "--config", "mine.toml"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting" in err or "secrets are not read" in err, err


# --- a found settings file --------------------------------------------------------------


def _narrate(*extra: str) -> list[str]:
    return ["narrate", "t.txt", "--provider", "espeak", "--quiet", *extra]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A downloaded project: the current folder, a document in it; the user's cache
    elsewhere."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    (project / "t.txt").write_text("Hello there.")
    return project


@pytest.mark.parametrize(
    ("setting", "command", "key"),
    [
        ('on_done = "touch pwned"', "watch", "on_done"),
        ('base_url = "http://127.0.0.1:9/"', "check", "base_url"),
        ('report = "{elsewhere}/bashrc"', "narrate", "report"),
        ('output = "{elsewhere}/book.wav"', "narrate", "output"),
        ('cover = "{elsewhere}/id_rsa"', "narrate", "cover"),
        ('cache_dir = "cache"\ncache_max_size = "1"', "narrate", "cache_max_size"),
        ('cache_dir = "{elsewhere}/cache"', "narrate", "cache_dir"),
        ("confirm_above = 1e9", "narrate", "confirm_above"),
        ("price_per_10k_chars = 0", "estimate", "price_per_10k_chars"),
        ("max_text_mb = 10000", "words", "max_text_mb"),
        ('provider = "openai"', "estimate", "provider"),
        ('model = "pricey"', "narrate", "model"),
        ('lexicon = "{elsewhere}/lex.toml"', "estimate", "lexicon"),
        ('lexicon = "link/lex.toml"', "estimate", "lexicon"),  # a link out of the folder
    ],
)
def test_a_found_file_may_not_set(
    setting: str,
    command: str,
    key: str,
    folder: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "lex.toml").write_text('[words]\nHello = "Goodbye"\n')
    (folder / "link").symlink_to(elsewhere)
    (folder / "narrator.toml").write_text(setting.format(elsewhere=elsewhere) + "\n")
    special = {"narrate": _narrate(), "watch": ["watch", ".", "-o", "out", "--provider", "espeak"]}
    argv = special.get(command, [command, "t.txt"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"narrator.toml: {key} = " in err
    assert "--trust-settings" in err and "--config" in err
    assert not (folder / "t.wav").exists() and not (elsewhere / "bashrc").exists()
    assert not (folder / "out").exists() and not (folder / "pwned").exists()
    assert not (elsewhere / "cache").exists() and not (folder / "cache").exists()


def test_a_found_file_sets_the_sound_and_paths_inside_its_folder(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "lex.toml").write_text('[words]\nHello = "Howdy"\n')
    (folder / "narrator.toml").write_text(
        'voice = "Ethan"\ngap_ms = 100\nrpm = 600\nexclude = ["drafts/*"]\n'
        'report = "run.json"\nlexicon = "lex.toml"\noutput = "books/t.wav"\n'
    )
    argv = ["narrate", "t.txt", "--provider", "espeak", "--quiet", "--cache-dir", "cache"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (folder / "books" / "t.wav").exists()
    assert json.loads((folder / "run.json").read_text())["documents"][0]["respelled_chunks"] == 1


def test_confirming_a_found_file_is_remembered_until_it_changes(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "narrator.toml").write_text('report = "../run.json"\n')
    assert main(_narrate()) == 2
    # A flag given on the command line wins: the file's value is not used, nothing to refuse.
    assert main(_narrate("--report", "here.json")) == 0
    assert main(_narrate("--trust-settings")) == 0
    assert (folder.parent / "run.json").exists()
    assert main(_narrate()) == 0  # remembered
    (folder / "narrator.toml").write_text('report = "../run.json"\nquiet = true\n')
    assert main(_narrate()) == 2  # changed: confirm again
    assert "narrator.toml: report" in capsys.readouterr().err
    assert main(_narrate("--config", "narrator.toml")) == 0  # named: yours


async def test_a_found_file_cannot_send_the_key_through_say(tmp_path: Path) -> None:
    seen: list[str] = []

    async def tts(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=wav_bytes(tone_pcm(0.2, 24000), 24000), content_type="audio/wav")

    app = web.Application()
    app.router.add_post("/v1/tts", tts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    try:
        (tmp_path / "narrator.toml").write_text(f'base_url = "{url}"\n')
        env = {"AIMLAPI_KEY": KEY}
        refused = await run_cli("say", "Hello", "--allow-private-network", env=env, cwd=tmp_path)
        assert refused.code == 2 and "narrator.toml: base_url" in refused.stderr
        assert "Traceback" not in refused.stderr and KEY not in refused.stderr
        assert seen == []  # the key never left
        ok = await run_cli(
            "say", "Hello", "-o", "h.wav", "--allow-private-network", "--trust-settings",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert ok.code == 0, ok.stderr
        # The notice names where the URL came from: the file, confirmed, not --base-url.
        assert f"sending the API key to {url} (from {tmp_path / 'narrator.toml'}, trusted" in (
            ok.stderr
        )
        assert seen == [f"Bearer {KEY}"]
    finally:
        await runner.cleanup()


# --- the key on the report's command line ----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", KEY],
        [f"--api-key={KEY}"],
        [f"--base-url=http://127.0.0.1:9/?key={KEY}", "--api-key", KEY],
    ],
)
def test_the_reports_command_never_holds_the_key(argv: list[str]) -> None:
    settings = Settings(api_key=KEY)
    line = report_command(["narrate", "t.txt", *argv], settings)
    assert KEY not in line and "$AIMLAPI_KEY" in line


def test_no_abbreviation_reaches_the_report(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(_narrate("--report", "r.json", "--ap", KEY))
    assert exited.value.code == 2 and "unrecognized arguments: --ap" in capsys.readouterr().err
    assert not (folder / "r.json").exists()
    assert main(_narrate("--report", "r.json", f"--api-key={KEY}")) == 0
    command = json.loads((folder / "r.json").read_text())["command"]
    assert KEY not in command and '--api-key="$API_KEY"' in command


# --- lexicons are bounded --------------------------------------------------------------

CATASTROPHIC = '[[entry]]\nterm = "(a|aa)+$"\nsay = "x"\nregex = true\n'


def test_a_budget_runs_out_on_its_clock() -> None:
    now = [0.0]
    budget = Budget(seconds=1.0, clock=lambda: now[0])
    assert budget.left() == 1.0
    now[0] = 0.5
    assert budget.left() == 0.5
    now[0] = 1.0
    with pytest.raises(InputError, match=r"took over 1\.0 s"):
        budget.left()


def test_a_catastrophic_pattern_fails_in_its_time() -> None:
    lexicon = Lexicon.parse(CATASTROPHIC, source="x.toml")
    with pytest.raises(InputError, match=r"x\.toml: entry 1 .*took over 0\.1 s"):
        lexicon.respell("a" * 40 + "!", budget=Budget(seconds=0.1))


def test_a_respelling_bomb_is_refused_before_it_is_built() -> None:
    bomb = Lexicon.parse(f'[words]\nbomb = "{"b " * 5000}"\n', source="bomb.toml")
    with pytest.raises(InputError, match=r"bomb\.toml: words\.bomb: .* over 1 million"):
        bomb.respell("bomb " * 300, budget=Budget(max_chars=1_000_000))
    assert len(bomb.apply("bomb " * 10)) > 50_000  # under the cap: as asked


@pytest.fixture
def quick_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenth of a second for a document's patterns (default: a second, more if long)."""
    monkeypatch.setattr(bounds, "REGEX_SECONDS", 0.1)


def test_a_lexicon_beside_a_document_fails_that_document_only(
    folder: Path, quick_regex: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "bad.md").write_text("Hello.\n\n" + "a" * 40 + "!\n")
    (folder / "bad.lexicon.toml").write_text(CATASTROPHIC)
    (folder / "bomb.md").write_text("bomb " * 300)
    (folder / "bomb.lexicon.toml").write_text(f'[words]\nbomb = "{"b " * 5000}"\n')
    docs = ["t.txt", "bad.md", "bomb.md", "--max-text-mb", "1"]
    assert main(["estimate", *docs]) == 1
    captured = capsys.readouterr()
    assert "FAILED: bad.md: lexicon bad.lexicon.toml: entry 1" in captured.err
    assert "FAILED: bomb.md: lexicon bomb.lexicon.toml: words.bomb" in captured.err
    assert re.search(r"^t\.txt ", captured.out, re.M)
    run = ["narrate", *docs, "-o", "out/", "--provider", "espeak"]
    assert main([*run, "--quiet", "--report", "r.json"]) == 1
    report = json.loads((folder / "r.json").read_text())
    status = {d["input"]: (d["status"], d["errors"]) for d in report["documents"]}
    assert status["t.txt"][0] == "done" and (folder / "out" / "t.wav").exists()
    assert status["bad.md"][0] == "failed" and "took over" in status["bad.md"][1][0]
    assert status["bomb.md"][0] == "failed" and "--max-text-mb" in status["bomb.md"][1][0]
    assert "Traceback" not in capsys.readouterr().err


async def test_estimate_in_a_process_does_not_hang_on_a_catastrophic_lexicon(
    tmp_path: Path,
) -> None:
    (tmp_path / "doc.md").write_text("a" * 40 + "!\n")
    (tmp_path / "doc.lexicon.toml").write_text(CATASTROPHIC)
    (tmp_path / "ok.md").write_text("Fine.\n")
    result = await asyncio.wait_for(run_cli("estimate", "doc.md", "ok.md", cwd=tmp_path), 60)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "FAILED: doc.md: lexicon doc.lexicon.toml: entry 1" in result.stderr
    assert "ok.md" in result.stdout


# --- watch ------------------------------------------------------------------------------


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[Callable[[str, str], None]]:
    (tmp_path / "inbox").mkdir()

    def put(name: str, text: str) -> None:
        (tmp_path / "inbox" / name).write_text(text)

    yield put


async def test_watch_fails_a_costly_or_catastrophic_document_and_goes_on(
    emulator: RunningEmulator, tmp_path: Path, inbox: Callable[[str, str], None]
) -> None:
    url = emulator.url
    inbox("small.txt", "A short note, read aloud.")
    inbox("big.txt", " ".join(f"Sentence {n} of a longer text, read aloud." for n in range(30)))
    inbox("bad.txt", "a" * 40 + "!")
    inbox("bad.lexicon.toml", CATASTROPHIC)
    # A dollar a character: small (25) is under $100, big (1,300) is over it.
    watcher = await Watcher.start(
        tmp_path / "inbox", tmp_path / "out", url, tmp_path / "cache",
        "--price-per-10k-chars", "10000", "--confirm-above", "100",
    )  # fmt: skip
    try:
        await watcher.until(r"^done: .*small\.txt")
        big = await watcher.until(r"^failed: .*big\.txt")
        bad = await watcher.until(r"^failed: .*bad\.txt")
    finally:
        assert await watcher.stop() == 0
    assert "over --confirm-above $100.00" in big[0] and "0 requests" in big[0]
    assert "took over" in bad[0]
    assert not any("Traceback" in line for line in watcher.lines)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.wav"]
