"""A measured child process: ``python -m narrator.tools.bench.child USAGE MODE ARGS...``.

MODE ``cli`` runs ``narrator ARGS`` exactly as ``python -m narrator`` would; ``stitch``
and ``pydub`` join the segments described by a JSON spec (``ARGS`` is its path),
``encode`` turns a WAV into M4B with ``narrator.book.encode``. At
exit the process writes what it cost to the JSON file USAGE: CPU seconds (user +
system, threads included) and peak resident memory.

Peak memory is read from ``VmHWM`` in ``/proc/self/status``, not from ``ru_maxrss``:
on Linux a child's ``ru_maxrss`` starts at its parent's peak at fork time, so a
benchmark process holding a few hundred megabytes would show through in every child.
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main", "peak_rss"]


# ru_maxrss is in kilobytes on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


def _pieces(spec: dict[str, object]) -> list[tuple[Path, int]]:
    segments = [Path(str(p)) for p in spec["segments"]]  # type: ignore[attr-defined]
    count = int(spec["count"])  # type: ignore[call-overload]
    gap = int(spec["gap_ms"])  # type: ignore[call-overload]
    return [(segments[i % len(segments)], gap) for i in range(count)]


def _cli(args: list[str]) -> int:
    """``python -m narrator ARGS``, in this process; its exit code."""
    sys.argv = ["narrator", *args]
    try:
        runpy.run_module("narrator", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _stitch(spec: dict[str, object]) -> None:
    from narrator.book.stitch import Piece, stitch_wav

    pieces = [Piece(path, gap) for path, gap in _pieces(spec)]
    stitch_wav(pieces, Path(str(spec["output"])))


def _pydub(spec: dict[str, object]) -> None:
    with warnings.catch_warnings():
        # Same reasons as in narrator.book.stitch: audioop deprecation, regex escapes, no ffmpeg.
        warnings.simplefilter("ignore")
        from pydub import AudioSegment

    book = AudioSegment.empty()
    for i, (path, gap) in enumerate(_pieces(spec)):
        if i:
            book += AudioSegment.silent(duration=gap, frame_rate=book.frame_rate)
        # What the usual recipe does: load every segment, append it with +=.
        book += AudioSegment.from_wav(str(path))
    book.export(str(spec["output"]), format="wav")


def _encode(spec: dict[str, object]) -> None:
    from narrator.book.encode import ChapterMark, Metadata, encode

    chapters = [ChapterMark("Part one", 0.0)]
    metadata = Metadata(title="narrator bench")
    source, output = Path(str(spec["source"])), Path(str(spec["output"]))
    encode(source, output, fmt="m4b", metadata=metadata, chapters=chapters)


def main(argv: list[str]) -> int:
    usage_path, mode, *args = argv
    began = time.perf_counter()
    code = 0
    imported = None
    try:
        if mode == "cli":
            # What a narration imports, first: the time to its first request is timed
            # from here (time.monotonic, the benchmark's loop clock too).
            import narrator.cli
            import narrator.run.pipeline  # noqa: F401

            imported = time.monotonic()
            code = _cli(args)
        elif mode in _MODES:
            _MODES[mode](json.loads(Path(args[0]).read_text(encoding="utf-8")))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # A child's ru_maxrss starts at ours (see above); ours is small next to ffmpeg's.
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _MAXRSS_UNIT
        Path(usage_path).write_text(
            json.dumps(
                {
                    "seconds": time.perf_counter() - began,
                    "cpu_seconds": usage.ru_utime + usage.ru_stime,
                    "peak_rss": peak_rss(),
                    "children_peak_rss": children,
                    "exit": code,
                    "imported": imported,
                }
            ),
            encoding="utf-8",
        )
    return code


_MODES = {"stitch": _stitch, "pydub": _pydub, "encode": _encode}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
