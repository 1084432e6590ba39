"""The error tree: one hierarchy in narrator.errors, and what the pool does with each kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import narrator
from narrator import errors
from narrator.errors import (
    AudioTooLarge,
    BadRequest,
    ChunkFailed,
    ChunkRefused,
    LinkRefused,
    NarrationFailed,
    NarratorError,
    VoiceFailed,
)
from narrator.store import Store

from .test_pool import FakeProvider, job, make_pool


def _library_modules() -> list[str]:
    # The tools (emulator, bench) keep their own errors, outside the library's tree.
    return [
        info.name
        for info in pkgutil.walk_packages(narrator.__path__, "narrator.")
        if not info.name.startswith("narrator.tools") and not info.name.endswith("__main__")
    ]


def test_every_exception_the_library_defines_is_in_errors() -> None:
    elsewhere = set()
    for name in _library_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")  # private control flow, never raised out
            ):
                elsewhere.add(f"{name}.{attr}")
    # Signals between the library's own parts, caught where they are raised: never seen
    # by a caller, so not part of the tree.
    internal = {"narrator.synth.attempts.ClaimedElsewhere"}
    home = {f"narrator.errors.{n}" for n in errors.__all__}
    assert sorted(elsewhere - home - internal) == []


def test_the_docstring_tree_is_the_class_tree() -> None:
    # Each line of the drawing names a class and, by its indentation, its parent.
    drawn: dict[str, str | None] = {}
    parents: list[str] = []
    assert errors.__doc__ is not None
    for line in errors.__doc__.splitlines():
        found = re.match(r"^    ([│ ]*)(?:[├└]── )?([A-Z]\w+)\s", line)
        if not found or found.group(2) not in errors.__all__:
            continue
        depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
        del parents[depth:]
        drawn[found.group(2)] = parents[-1] if parents else None
        parents.append(found.group(2))
    actual = {
        name: (None if cls is NarratorError else cls.__base__.__name__)
        for name in errors.__all__
        if issubclass(cls := getattr(errors, name), NarratorError)
    }
    assert drawn == actual


def test_the_old_homes_still_name_the_same_classes() -> None:
    from narrator.run.pipeline import NarrationFailed as from_pipeline
    from narrator.synth.pool import ChunkFailed as from_pool
    from narrator.synth.pool import Stopped

    assert narrator.NarrationFailed is from_pipeline is NarrationFailed
    assert from_pool is ChunkFailed and Stopped is errors.Stopped


@pytest.mark.parametrize(
    "refusal",
    [
        BadRequest("text too long"),
        AudioTooLarge("audio segment exceeds the 10-byte cap"),
        LinkRefused("refusing to download audio from a non-HTTP link"),
    ],
)
async def test_a_refused_chunk_fails_at_once_and_the_rest_go_on(
    tmp_path: Path, refusal: ChunkRefused
) -> None:
    store = Store(tmp_path / "cache")
    provider = FakeProvider(failures={"bad": [refusal] * 3})
    try:
        async with make_pool(provider, store, retries=3) as pool:
            with pytest.raises(ChunkFailed, match=re.escape(str(refusal))) as info:
                await pool.submit(job("bad"))
            good = await pool.submit(job("good"))
    finally:
        store.close()
    assert info.value.attempts == 1 and provider.texts.count("bad") == 1
    assert good.requests == 1


def test_a_voice_failure_fails_its_chunk_not_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from narrator.synth import espeakng

    real = espeakng.Engine.synthesize

    def synthesize(self: espeakng.Engine, text: str, voice: str = "Cherry") -> bytes:
        if "second" in text:
            raise VoiceFailed("eSpeak NG failed to synthesize (code 2)")
        return real(self, text, voice)

    monkeypatch.setattr(espeakng.Engine, "synthesize", synthesize)
    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "c", max_chars=20)
    text = "The first sentence here.\n\nThe second sentence here."
    with pytest.raises(NarrationFailed) as info:
        narrator.narrate_sync(text, tmp_path / "a.wav", settings)
    report = info.value.report
    assert report.status == "failed"
    assert list(report.errors) == ["chunk 2: eSpeak NG failed to synthesize (code 2)"]


def test_each_class_carries_the_exit_code_the_tree_gives_it() -> None:
    assert errors.__doc__ is not None
    drawn = {
        found.group(1): int(found.group(2))
        for line in errors.__doc__.splitlines()
        if (found := re.match(r"^ +[│├└─ ]*(\w+) .*\(exit (\d)\)", line)) is not None
    }
    assert drawn["AuthError"] == 2 and drawn["OutOfCredits"] == 1
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, NarratorError):
            # a class the tree gives no code takes its parent's
            expected = next(drawn[c.__name__] for c in cls.__mro__ if c.__name__ in drawn)
            assert cls.exit_code == expected, name
    assert NarratorError.exit_code == 1 and errors.ConfigError.exit_code == 2


@pytest.mark.parametrize(
    ("error", "code"),
    [(errors.Unreachable("no such host"), 2), (errors.InternalFailure("the store broke"), 1)],
)
def test_the_command_exits_with_the_error_s_own_code(
    error: NarratorError, code: int, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from narrator.cli import main, parser

    def voices(args: object) -> int:
        raise error

    monkeypatch.setattr(parser, "cmd_voices", voices)
    assert main(["voices"]) == code
    assert capsys.readouterr().err == f"narrator: {error}\n"


async def test_an_unexpected_error_in_a_worker_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "cache")
    provider = FakeProvider(failures={"bug": [ZeroDivisionError("a bug in a provider")]})
    try:
        async with make_pool(provider, store) as pool:
            with pytest.raises(ChunkFailed, match="unexpected ZeroDivisionError"):
                await pool.submit(job("bug"))
    finally:
        store.close()
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "ZeroDivisionError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
