"""``python -m narrator.tools.bench``: the benchmarks of issue 6 against the emulator on loopback.

Prints one table (what was measured, the figure, the reference it is compared with
in the same run, their ratio, and whether the goal is met) and, with ``--json FILE``,
writes it with the machine it ran on. No network, no key: the AIML API emulator
(tone voice) runs in this process; narrator runs as a separate process so that its
CPU time and memory are measured alone. ``--quick`` runs a smaller version in well
under a minute. It is a benchmark, not a test: nothing here fails on a slow figure.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ... import __version__
from .cases import CASES
from .harness import FULL, QUICK, BenchError, Row, Sizes, Workdir

__all__ = ["FULL", "QUICK", "Row", "Sizes", "format_table", "machine_info", "run", "to_json"]


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS and Python: what the figures depend on."""
    cpu = platform.processor() or platform.machine()
    memory = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
        with open("/proc/meminfo", encoding="utf-8") as info:
            first = info.readline().split()  # MemTotal: N kB
            memory = int(first[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "narrator": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def run(
    sizes: Sizes,
    folder: Path,
    *,
    progress: Callable[[str], None] = lambda message: None,
    only: Sequence[str] = (),
) -> list[Row]:
    """Run the benchmarks (all, or those named in ``only``) in ``folder``; their rows.

    A benchmark that cannot run (say a child process fails) gives one row saying so,
    and the others still run.
    """
    work = Workdir(folder)
    rows: list[Row] = []
    for case in CASES:
        if only and case.__name__ not in only:
            continue
        try:
            rows += await case(sizes, work, progress)
        except (BenchError, OSError) as exc:
            name = case.__name__.replace("_", " ")
            rows.append(Row(name, f"failed: {exc}", "", goal="runs", met=False))
    return rows


def _met(row: Row) -> str:
    if row.met is None:
        return "-"
    return f"yes ({row.goal})" if row.met else f"NO ({row.goal})"


def format_table(rows: Sequence[Row], machine: dict[str, Any], *, title: str) -> str:
    """The rows as a Markdown table under a header naming the machine."""
    memory = machine.get("memory_bytes")
    ram = f", {memory / 2**30:.0f} GiB RAM" if memory else ""
    header = [
        f"{title}: {machine['cpu']}, {machine['cores']} cores{ram}, {machine['os']}, "
        f"{machine['python']}, narrator {machine['narrator']}, {machine['date']}",
        "",
    ]
    cells = [("what", "figure", "reference", "ratio", "goal met?")]
    cells += [(r.what, r.figure, r.reference, r.ratio_text, _met(r)) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(5)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(header + lines)


def to_json(
    rows: Sequence[Row], machine: dict[str, Any], sizes: Sizes, seconds: float
) -> dict[str, Any]:
    """The table as a JSON-ready dict."""
    return {
        "machine": machine,
        "sizes": dataclasses.asdict(sizes),
        "seconds": round(seconds, 1),
        "rows": [dataclasses.asdict(row) for row in rows],
        "goals_missed": [row.what for row in rows if row.met is False],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m narrator.tools.bench",
        description="Benchmark narrator against the AIML API emulator on loopback.",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    names = [case.__name__ for case in CASES]
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        choices=names,
        default=[],
        help=f"run only this benchmark (repeatable): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    machine = machine_info()
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"bench [{time.monotonic() - began:5.0f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="narrator-bench-") as scratch:
        rows = asyncio.run(run(sizes, Path(scratch), progress=progress, only=args.only))
    seconds = time.monotonic() - began
    title = "narrator bench" + (" --quick" if args.quick else "")
    print(format_table(rows, machine, title=title))
    print(f"\n{len(rows)} rows in {seconds:.0f} s", end="")
    missed = [row for row in rows if row.met is False]
    print(f"; goal missed: {len(missed)}" if missed else "; every goal met")
    if args.json:
        Path(args.json).write_text(
            json.dumps(to_json(rows, machine, sizes, seconds), indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
