"""narrator.run.batch as a library: planning outputs, reading inputs, the JSON report; and the
one default cache folder that the library and the command line share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from narrator.errors import ConfigError
from narrator.run.batch import (
    check_outputs,
    find_batch,
    plan_works,
    read_batch,
    report_data,
    totals,
    with_unread,
    write_report,
)
from narrator.run.pipeline import DocumentReport, RunReport
from narrator.run.status import Status
from narrator.settings import Settings
from narrator.util.folders import default_cache_dir

from .conftest import run_cli


def doc_report(name: str, status: Status, **extra: object) -> DocumentReport:
    fields: dict[str, object] = {
        "input": name, "output": f"{name}.wav", "title": name, "status": status, "chunks": 2,
        "billing_characters": 100, "audio_seconds": 1.5, "requests": 2, "retries": 0,
        "cached_chunks": 0,
    }  # fmt: skip
    fields.update(extra)
    return DocumentReport(**fields)  # type: ignore[arg-type]


async def test_a_folder_is_read_and_planned_under_the_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "story.txt").write_text("One sentence here.")
    (src / "b" / "story.md").write_text("# Title\n\nAnother sentence.")
    (src / "empty.txt").write_text("   \n")
    (src / "blob.txt").write_bytes(b"\x00\x01\x02 binary")
    batch = find_batch([str(src)])
    assert batch.many and not batch.reads_stdin
    check_outputs(batch, str(tmp_path / "out"), "mp3")
    loaded = await read_batch(batch)
    works = plan_works(batch, loaded, str(tmp_path / "out"), "mp3")
    assert sorted(w.output.relative_to(tmp_path / "out").as_posix() for w in works) == [
        "a/story.mp3",
        "b/story.mp3",
    ]
    assert {(Path(r.input).name, r.status) for r in loaded.unread} == {
        ("empty.txt", Status.SKIPPED),
        ("blob.txt", Status.SKIPPED),
    }


async def test_two_inputs_with_one_name_keep_both(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.txt").write_text(f"Text from {folder}.")
    # Given as files, both are named after themselves at the top of -o.
    batch = find_batch([str(tmp_path / "x" / "same.txt"), str(tmp_path / "y" / "same.txt")])
    loaded = await read_batch(batch)
    works = plan_works(batch, loaded, str(tmp_path / "out"))
    assert [w.output.name for w in works] == ["same.wav", "same-2.wav"]


def test_wrong_outputs_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A.")
    (tmp_path / "b.txt").write_text("B.")
    one = find_batch([str(tmp_path / "a.txt")])
    two = find_batch([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")])
    with pytest.raises(ConfigError, match="name the output with one of the extensions"):
        check_outputs(one, str(tmp_path / "book.xyz"))
    with pytest.raises(ConfigError, match="several inputs need a folder"):
        check_outputs(two, str(tmp_path / "book.mp3"))
    with pytest.raises(ConfigError, match="need -o DIR"):
        check_outputs(two, None)
    (tmp_path / "bare").mkdir()
    with pytest.raises(ConfigError, match="no documents found"):
        find_batch([str(tmp_path / "bare")])


def test_the_report_counts_by_status_and_writes_statuses_as_words(tmp_path: Path) -> None:
    run = RunReport(
        documents=(
            doc_report("a", Status.DONE),
            doc_report("b", Status.UP_TO_DATE),
            doc_report("c", Status.FAILED, errors=("boom", "again")),
        ),
        requests=4,
        retries=1,
        throttled=0,
        resynthesized=0,
        seconds=2.0,
    )
    unread = [doc_report("z", Status.SKIPPED, errors=("empty",))]
    run = with_unread(run, unread, ["z", "a", "b", "c"])
    assert [d.input for d in run.documents] == ["z", "a", "b", "c"]
    sums = totals(run)
    assert (sums["done"], sums["up_to_date"], sums["failed"], sums["skipped"]) == (1, 1, 1, 1)
    assert sums["errors"] == 2 and sums["chunks"] == 8 and not run.ok
    path = tmp_path / "deep" / "run.json"
    write_report(path, run, Settings(provider="espeak"))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [d["status"] for d in data["documents"]] == ["skipped", "done", "up-to-date", "failed"]
    assert data["errors"] == ["c: boom", "c: again"]
    assert data["provider"] == "espeak" and data["totals"] == sums
    assert report_data(run)["ok"] is False and "provider" not in report_data(run)


def test_status_ok_is_what_a_run_need_not_redo() -> None:
    assert {s for s in Status if s.ok} == {Status.DONE, Status.UP_TO_DATE, Status.SKIPPED}
    assert f"{Status.UP_TO_DATE}" == "up-to-date" and Status("stopped") is Status.STOPPED


def test_library_and_cli_share_the_default_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    offline = Settings(provider="espeak")
    assert offline.store_dir == tmp_path / "xdg" / "narrator" == default_cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # set but empty: the fallback, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings(provider="espeak").store_dir == tmp_path / "home" / ".cache" / "narrator"
    assert default_cache_dir({"XDG_CACHE_HOME": "/elsewhere"}) == Path("/elsewhere/narrator")


async def test_narrator_cache_reads_the_same_folder(tmp_path: Path) -> None:
    result = await run_cli("cache", "info", env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert result.code == 0
    assert result.stdout.strip() == f"{tmp_path / 'xdg' / 'narrator'}: empty"
