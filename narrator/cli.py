"""The ``narrator`` command: a thin shell over the library.

It is the only place that reads the environment, prints, and turns errors into exit
codes: 0 all done, 1 some document failed (or the account ran out of credits),
2 usage or configuration error, 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from .documents import Document, decode, load_document, parse_text
from .errors import AuthError, ConfigError, EndpointNotFound, InputError, NarratorError
from .pipeline import ProgressEvent, RunReport, Work, narrate_many
from .settings import DEFAULT_BASE_URL, Settings

log = logging.getLogger("narrator")

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")


def default_cache_dir(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/narrator``, else ``~/.cache/narrator``."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "narrator"


# --- inputs and outputs -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Input:
    source: Path | None  # None: standard input
    relative: Path  # where its audiobook goes under an output folder, without suffix


def _expand(inputs: Sequence[str]) -> tuple[list[_Input], bool]:
    """Files and folders to documents; True when a folder or several inputs were given."""
    found: list[_Input] = []
    many = len(inputs) > 1
    for raw in inputs:
        if raw == "-":
            found.append(_Input(None, Path("stdin")))
            continue
        path = Path(raw)
        if path.is_dir():
            many = True
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if file.is_file() and file.suffix.lower() in TEXT_SUFFIXES:
                    found.append(_Input(file, rel.with_suffix("")))
        elif path.is_file():
            found.append(_Input(path, Path(path.stem)))
        else:
            raise ConfigError(f"{raw}: no such file or folder")
    return found, many


def _plan_outputs(inputs: list[_Input], many: bool, out: str | None) -> list[Path]:
    if not many:
        (only,) = inputs
        if out is None:
            if only.source is None:
                raise ConfigError("reading standard input needs -o FILE.wav")
            return [only.source.with_suffix(".wav")]
        target = Path(out)
        if target.is_dir() or out.endswith(("/", os.sep)):
            return [target / f"{only.relative.name}.wav"]
        if target.suffix.lower() != ".wav":
            raise ConfigError(f"-o {out}: narrator writes WAV; name the output *.wav or a folder")
        return [target]
    if out is None:
        raise ConfigError("several inputs or a folder need -o DIR for the audiobooks")
    root = Path(out)
    if root.suffix.lower() == ".wav":
        raise ConfigError(f"-o {out}: several inputs need a folder, not a .wav file")
    outputs: list[Path] = []
    taken: set[Path] = set()
    for item in inputs:
        candidate = root / f"{item.relative}.wav"
        n = 2
        while candidate in taken:  # two inputs with one name: keep both
            candidate = root / f"{item.relative}-{n}.wav"
            n += 1
        taken.add(candidate)
        outputs.append(candidate)
    return outputs


def _read(item: _Input) -> Document:
    if item.source is None:
        text = decode(sys.stdin.buffer.read(), name="standard input")
        return parse_text(text, title="stdin", source="-")
    return load_document(item.source)


def _works(inputs: Sequence[str], out: str | None) -> list[Work]:
    items, many = _expand(inputs)
    if not items:
        raise ConfigError("no text files found in " + ", ".join(inputs))
    outputs = _plan_outputs(items, many, out)
    works: list[Work] = []
    for item, output in zip(items, outputs, strict=True):
        name = "-" if item.source is None else str(item.source)
        try:
            doc = _read(item)
        except InputError as exc:
            log.warning("skipped %s", exc)
            continue
        if doc.is_empty:
            log.warning("skipped %s: empty", name)
            continue
        works.append(Work(doc, output))
    if not works:
        raise ConfigError("nothing to narrate: every input was empty or unreadable")
    return works


# --- running ----------------------------------------------------------------------------


class _Bar:
    """Turns progress events into a tqdm bar on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.bar: tqdm[None] | None = None
        self.quiet = quiet
        self.characters = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "planned":
            self.bar = tqdm(
                total=event.chunks,
                unit="chunk",
                desc="narrating",
                disable=True if self.quiet else None,
                dynamic_ncols=True,
            )
            self.total_chars = event.characters
        elif event.kind == "chunk" and self.bar is not None:
            self.characters += event.characters
            self.bar.set_postfix_str(
                f"{self.characters:,}/{self.total_chars:,} chars", refresh=False
            )
            self.bar.update(event.chunks)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _summary(run: RunReport) -> None:
    for doc in run.documents:
        if doc.status == "done":
            cached = f", {doc.cached_chunks} from cache" if doc.cached_chunks else ""
            print(
                f"{doc.output}  {_format_seconds(doc.audio_seconds)}  ({doc.chunks} chunks{cached})"
            )
        else:
            first = doc.errors[0] if doc.errors else ""
            print(f"{doc.status.upper()}: {doc.input}: {first}", file=sys.stderr)
    done = sum(d.status == "done" for d in run.documents)
    print(
        f"{done} of {len(run.documents)} audiobooks written; {run.requests} requests, "
        f"{run.retries} retries, {run.seconds:.1f} s",
        file=sys.stderr,
    )


def _write_report(path: Path, run: RunReport) -> None:
    data = {
        "documents": [dataclasses.asdict(d) for d in run.documents],
        "requests": run.requests,
        "retries": run.retries,
        "throttled": run.throttled,
        "resynthesized": run.resynthesized,
        "seconds": run.seconds,
        "stopped": run.stopped,
        "ok": run.ok,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


async def _narrate(works: list[Work], settings: Settings, *, quiet: bool) -> tuple[RunReport, int]:
    stop = asyncio.Event()
    caught: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if caught:  # a second Ctrl-C: stop waiting for requests in flight
            raise KeyboardInterrupt
        caught.append(signum)
        log.warning("stopping: no new requests; waiting a few seconds for those in flight")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    bar = _Bar(quiet)
    try:
        with logging_redirect_tqdm():
            run = await narrate_many(works, settings, on_progress=bar, stop=stop)
    finally:
        bar.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return run, (128 + caught[0]) if caught else 0


def _run_narrate(works: list[Work], settings: Settings, *, quiet: bool, report: str | None) -> int:
    run, interrupted = asyncio.run(_narrate(works, settings, quiet=quiet))
    if report:
        _write_report(Path(report), run)
    _summary(run)
    if interrupted:
        print(
            "narrator: interrupted; finished chunks are saved, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return interrupted
    if run.stop_error is not None:
        if isinstance(run.stop_error, (AuthError, EndpointNotFound)):
            print(f"narrator: {run.stop_error}", file=sys.stderr)
            return 2
        print(
            f"narrator: {run.stop_error}; everything finished so far is kept, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 1
    return 0 if run.ok else 1


def _settings(args: argparse.Namespace, env: dict[str, str] | os._Environ[str]) -> Settings:
    api_key = args.api_key or env.get("AIMLAPI_KEY") or None
    base_url = args.base_url or env.get("NARRATOR_BASE_URL") or DEFAULT_BASE_URL
    return Settings(
        provider=args.provider,
        api_key=api_key,
        base_url=base_url,
        voice=args.voice,
        concurrency=args.concurrency,
        rpm=args.rpm,
        max_chars=args.max_chars,
        lang=args.lang,
        gap_ms=args.gap_ms,
        chapter_gap_ms=args.chapter_gap_ms,
        retries=args.retries,
        backoff_base=args.backoff,
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(env),
    )


def cmd_narrate(args: argparse.Namespace) -> int:
    settings = _settings(args, os.environ)
    works = _works(args.inputs, args.output)
    return _run_narrate(works, settings, quiet=args.quiet, report=args.report)


def cmd_demo(args: argparse.Namespace) -> int:
    from .emulator import EmulatorConfig, start_emulator

    works = _works(args.inputs, args.output)

    with tempfile.TemporaryDirectory(prefix="narrator-demo-") as cache:

        async def main() -> tuple[RunReport, int]:
            emulator = await start_emulator(EmulatorConfig(api_key="demo-key"))
            try:
                print(
                    f"narrator demo: the AIML API emulator is listening on {emulator.url}",
                    file=sys.stderr,
                )
                settings = Settings(
                    api_key="demo-key",
                    base_url=emulator.url,
                    voice=args.voice,
                    rpm=600,
                    concurrency=4,
                    cache_dir=Path(cache),
                )
                return await _narrate(works, settings, quiet=args.quiet)
            finally:
                await emulator.close()

        run, interrupted = asyncio.run(main())
    _summary(run)
    if run.ok and not interrupted:
        print(f"Audiobooks are in {Path(args.output).resolve()}/")
    return interrupted or (0 if run.ok else 1)


def cmd_serve(args: argparse.Namespace) -> int:
    from .emulator import EmulatorConfig, start_emulator

    config = EmulatorConfig(
        api_key=args.api_key,
        rpm=args.rpm,
        max_concurrency=args.max_concurrency,
        latency=args.latency,
        fail_rate=args.fail_rate,
        shape=args.shape,
        engine=args.engine,
        url_ttl=args.url_ttl,
        drop_rate=args.drop_rate,
        truncate_rate=args.truncate_rate,
        credits=args.credits,
        retry_after=args.retry_after,
        seed=args.seed,
    )

    async def main() -> None:
        emulator = await start_emulator(config, host=args.host, port=args.port)
        print(f"narrator serve: listening on {emulator.url}/v1/tts", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    from .espeak import VOICES

    for info in VOICES.values():
        print(f"{info.name:<10} {info.description}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .store import Store

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if not (root / "narrator.sqlite3").exists():
        print(f"{root}: empty")
        return 0
    store = Store(root)
    try:
        if args.action == "clear":
            store.clear()
            print(f"{root}: cleared")
        else:
            info = store.info()
            states = ", ".join(f"{n} {s}" for s, n in sorted(info.states.items())) or "no segments"
            print(f"{root}: {info.files} audio files, {info.bytes / 1e6:.1f} MB; {states}")
    finally:
        store.close()
    return 0


# --- parsing ----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="narrator",
        description="Turn long text into audiobooks through text-to-speech services.",
    )
    parser.add_argument("--version", action="version", version=f"narrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("narrate", help="narrate text files into WAV audiobooks")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="text files, folders, or - for stdin")
    p.add_argument("-o", "--output", help="FILE.wav for one input, a folder for several")
    p.add_argument("--voice", default="Cherry", help="voice name (see `narrator voices`)")
    p.add_argument("--provider", default="aimlapi", choices=["aimlapi", "espeak"])
    p.add_argument("--api-key", help="AIML API key (default: $AIMLAPI_KEY)")
    p.add_argument(
        "--base-url", help=f"API root (default: $NARRATOR_BASE_URL or {DEFAULT_BASE_URL})"
    )
    p.add_argument(
        "--concurrency", type=_positive_int, default=4, help="requests in flight at most"
    )
    p.add_argument("--rpm", type=_positive_float, default=60.0, help="requests per minute at most")
    p.add_argument("--max-chars", type=int, default=600, help="billing characters per chunk")
    p.add_argument("--lang", default="en", help="language for sentence splitting (en, zh, ja, ...)")
    p.add_argument("--gap-ms", type=int, default=300, help="silence between chunks")
    p.add_argument("--chapter-gap-ms", type=int, default=1200, help="silence between chapters")
    p.add_argument("--retries", type=_positive_int, default=8, help="attempts per chunk")
    p.add_argument(
        "--backoff",
        type=float,
        default=0.5,
        metavar="S",
        help="first retry delay in seconds, doubling each time (jittered); 0 retries at once",
    )
    p.add_argument("--cache-dir", help="segment store (default: $XDG_CACHE_HOME/narrator)")
    p.add_argument("--report", metavar="FILE.json", help="write a JSON report of the run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_narrate)

    p = sub.add_parser("demo", help="narrate through a local emulator of the AIML API (no key)")
    p.add_argument("inputs", nargs="*", default=["samples"], metavar="INPUT")
    p.add_argument("-o", "--output", default="out")
    p.add_argument("--voice", default="Cherry")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run the AIML API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", help="the only key accepted (default: any)")
    p.add_argument("--rpm", type=_positive_float, help="requests per minute allowed, then 429")
    p.add_argument(
        "--max-concurrency", type=_positive_int, help="requests in flight allowed, then 429"
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    p.add_argument("--fail-rate", type=_rate, default=0.0, help="share of random 5xx answers")
    p.add_argument("--shape", default="object", choices=["object", "string", "binary", "mixed"])
    p.add_argument("--engine", default="espeak", choices=["espeak", "tone"], help="the voice")
    p.add_argument("--url-ttl", type=_positive_float, default=86400.0, help="seconds a link lives")
    p.add_argument("--drop-rate", type=_rate, default=0.0, help="share of dropped connections")
    p.add_argument("--truncate-rate", type=_rate, default=0.0, help="share of cut-short downloads")
    p.add_argument("--credits", type=int, help="billing characters the account may spend, then 403")
    p.add_argument("--retry-after", type=float, help="Retry-After seconds on 429 answers")
    p.add_argument("--seed", type=int, help="random seed for the fault knobs")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("voices", help="list the voices")
    p.set_defaults(func=cmd_voices)

    p = sub.add_parser("cache", help="show or clear the segment store")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache-dir")
    p.set_defaults(func=cmd_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="narrator: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"narrator: {exc}", file=sys.stderr)
        return 2
    except NarratorError as exc:
        print(f"narrator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("narrator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
