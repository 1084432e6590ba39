"""The tree follows the data: a stage imports only the stages before it.

A document goes inputs -> chunks -> synth -> book, with the segment store under synth;
the rooms above the stages (``run``: the pipeline that joins them, ``report``, ``watch``,
and ``estimate``) are imported by no stage, ``cli`` is the command line and ``tools``
(emulator, bench) sits outside the core. Every import in
the package is read with :mod:`ast`, lazy and ``TYPE_CHECKING`` ones included, so an
arrow pointing backwards fails here rather than in a reviewer's head.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "narrator"

STAGES = ("inputs", "chunks", "store", "synth", "book")
# Every module may import these; they in turn import only each other.
SHARED = frozenset({"errors", "util", "settings", "_version"})
# The library's operations and the shells around it: no stage imports them.
ABOVE_STAGES = frozenset({"run", "report", "watch", "estimate", "cli", "tools", ""})
# The package root holds the front door and what every room shares, nothing else.
ROOT_MODULES = frozenset({"__init__", "__main__", "_version", "settings", "errors", "estimate"})

# Known arrows that break the rules, each to be removed by the next step of issue 16
# (one provider registry, one default per setting). Do not add to this set: fix the
# import instead.
ALLOWED = frozenset({})

# Where modules lived before the tree was split by stage: nothing may use these paths.
OLD_PATHS = (
    "narrator.sanitize narrator.netpolicy narrator.diskspace narrator.folders narrator.audio "
    "narrator.sources narrator.documents narrator.lines narrator.speakable narrator.limits "
    "narrator.split narrator.language narrator.pool narrator.retakes "
    "narrator.quality narrator.sanity narrator.watchdog narrator.espeak narrator.providers "
    "narrator.stitch narrator.encode narrator.audiobook narrator.subtitles narrator.feed "
    "narrator.argtypes narrator.config narrator.emulator narrator.bench narrator._bench "
    "narrator.pipeline narrator.narration narrator.uptodate narrator.reports narrator.batch "
    "narrator.check narrator.audition narrator.status narrator.report_json narrator.report_page "
    "narrator.report_charts narrator.report_format narrator.schedule narrator.synth.store "
    "narrator.synth.store_db narrator.synth.store_claims narrator.synth.store_books "
    "narrator.synth.store_verdicts narrator.synth.store_usage narrator.synth.store_files "
    "narrator.synth.store_spend narrator.synth.store_queue narrator.synth.storethread"
).split()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """Every narrator module ``name`` imports, as absolute names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # `from ..util import netpolicy` imports a module, not a name.
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in MODULES else source)
    return {m for m in found if m == "narrator" or m.startswith("narrator.")}


def area(name: str) -> str:
    """``narrator.synth.pool`` -> ``synth``; the package itself -> ``""``."""
    return name.split(".")[1] if "." in name else ""


def broken_rule(importer: str, target: str) -> str | None:
    """Which rule ``importer`` importing ``target`` breaks, if any."""
    here, there = area(importer), area(target)
    if here == there:
        return None
    if here in SHARED:
        return (
            None if there in SHARED else f"{here} is shared, so imports only errors/util/settings"
        )
    if there in SHARED:
        return None
    if there == "tools" and here != "cli":
        return "only the command line imports tools"
    if here in STAGES:
        if there in ABOVE_STAGES:
            return f"stage {here} imports {there or 'the package root'}"
        if there in STAGES and STAGES.index(there) > STAGES.index(here):
            return f"stage {here} imports the later stage {there}"
    return None


def violations() -> set[tuple[str, str, str]]:
    return {
        (importer, target, rule)
        for importer, path in MODULES.items()
        for target in imported(importer, path)
        if (rule := broken_rule(importer, target)) is not None
    }


def test_every_stage_imports_only_earlier_ones() -> None:
    unexpected = {v for v in violations() if (v[0], v[1]) not in ALLOWED}
    assert not unexpected, "\n".join(f"{a} -> {b}: {rule}" for a, b, rule in sorted(unexpected))


def test_allowed_exceptions_still_exist() -> None:
    # An exception fixed in the code must leave ALLOWED too, or it hides a regression.
    actual = {(a, b) for a, b, _ in violations()}
    assert sorted(ALLOWED - actual) == []


def test_the_rules_catch_a_backward_arrow() -> None:
    assert broken_rule("narrator.inputs.documents", "narrator.chunks.split")
    assert broken_rule("narrator.synth.pool", "narrator.run.pipeline")
    assert broken_rule("narrator.book.stitch", "narrator.tools.emulator")
    assert broken_rule("narrator.run.pipeline", "narrator.tools.emulator")
    assert broken_rule("narrator.util.wav", "narrator.store")
    assert broken_rule("narrator.book.stitch", "narrator.synth.sanity") is None
    assert broken_rule("narrator.cli.config", "narrator.tools.emulator") is None
    assert broken_rule("narrator.synth.providers", "narrator.settings") is None


def test_no_module_imports_another_s_private_names() -> None:
    # Two modules that trade `_private` names are one concern split in two: merge them, or
    # make the names public.
    found = [
        f"{name}: {node.module or '.'}.{alias.name}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert found == []


def test_the_package_root_holds_only_the_front_door() -> None:
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert sorted(root - ROOT_MODULES) == []


def test_relative_imports_resolve_to_modules() -> None:
    # A `from ..x import y` left pointing at an old place would still parse.
    missing = {
        (name, target)
        for name, path in MODULES.items()
        for target in imported(name, path)
        if target not in MODULES
    }
    assert not missing


@pytest.mark.parametrize("old", OLD_PATHS)
def test_old_paths_are_gone(old: str) -> None:
    assert importlib.util.find_spec(old) is None


def test_nothing_names_an_old_path() -> None:
    # Imports, monkeypatch targets, `python -m` strings and docstrings alike.
    old = re.compile(r"(?<![\w./])(" + "|".join(map(re.escape, OLD_PATHS)) + r")\b")
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    files += [ROOT / "Makefile", ROOT / "README.md", ROOT / "pyproject.toml"]
    files += sorted((ROOT / "docs").glob("*.md"))
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        if path != Path(__file__).resolve()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if old.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_module_map_matches_the_tree() -> None:
    section = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", table))
    assert named, "no module named in docs/architecture.md's map"
    assert sorted(p for p in named if not (PACKAGE / p).exists()) == []
    modules = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    covered = {
        m for m in modules if m in named or any(d.endswith("/") and m.startswith(d) for d in named)
    }
    assert sorted(modules - covered) == []


def test_the_version_is_pyproject_s() -> None:
    import tomllib

    from narrator._version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert __version__ == project["version"]


def test_a_run_computes_segment_keys_in_one_place() -> None:
    # The store defines the key; a run's Plan (run/plan.py) is the one caller.
    callers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "segment_key(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["run/plan.py", "store/__init__.py"]
