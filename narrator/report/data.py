"""The run report's data as JSON, and a JSON report read back into the run.

The JSON is :func:`narrator.run.batch.report_data` with what the page needs besides (the
timeline, the price, the command), so :func:`read_report` can render the page later.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..book.encode import ChapterMark
from ..errors import ConfigError
from ..estimate import DEFAULT_PRICE_PER_10K_CHARS
from ..run.batch import report_data
from ..run.pipeline import DocumentReport, Flag, RunReport
from ..run.results import Voiced
from ..run.status import Status
from ..settings import Settings
from ..synth.timeline import Series
from ..util.registry import REGISTRY
from ..util.sanitize import storable_data

__all__ = ["RunContext", "context_of", "read_report", "report_json"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the report says beside the run itself: the pace it was allowed, the price
    its costs are figured at, and the command that made it (to resume it)."""

    provider: str | None = None
    rpm: float | None = None  # None: no limit, or not known
    concurrency: int | None = None
    price_per_10k_chars: float = DEFAULT_PRICE_PER_10K_CHARS
    command: str | None = None


def context_of(settings: Settings | None, *, command: str | None = None) -> RunContext:
    if settings is None:
        return RunContext(command=command)
    entry = REGISTRY.get(settings.provider)
    price = entry.price_per_10k_chars if entry is not None else None
    return RunContext(
        provider=settings.provider,
        rpm=None if math.isinf(settings.rpm) else settings.rpm,
        concurrency=settings.concurrency,
        price_per_10k_chars=DEFAULT_PRICE_PER_10K_CHARS if price is None else price,
        command=command,
    )


def report_json(run: RunReport, context: RunContext, settings: Settings | None = None) -> str:
    """The JSON report (:func:`narrator.run.batch.report_data`) with the timeline, the price
    and the command, so :func:`read_report` can render the page from it later."""
    data = report_data(run, settings)
    data["timeline"] = dataclasses.asdict(run.timeline) if run.timeline else None
    data["price_per_10k_chars"] = context.price_per_10k_chars
    data["command"] = context.command
    return json.dumps(storable_data(data), indent=2, ensure_ascii=False) + "\n"


def read_report(path: Path) -> tuple[RunReport, RunContext]:
    """A JSON report back into the run and its context; :class:`ConfigError` when the
    file is not one."""
    try:
        data = json.loads(
            path.read_text(encoding="utf-8"), parse_constant=_refuse, parse_float=_finite
        )
        documents = tuple(_document(d) for d in data["documents"])
        run = RunReport(
            documents=documents,
            requests=int(data.get("requests", 0)),
            retries=int(data.get("retries", 0)),
            throttled=int(data.get("throttled", 0)),
            resynthesized=int(data.get("resynthesized", 0)),
            seconds=float(data.get("seconds", 0.0)),
            stopped=_text(data.get("stopped")),
            qa_resynthesized=int(data.get("qa_resynthesized", 0)),
            qa_budget_spent=bool(data.get("qa_budget_spent", False)),
            timeline=Series.from_json(data["timeline"]) if data.get("timeline") else None,
        )
        price = data.get("price_per_10k_chars")
        rpm, concurrency = data.get("rpm"), data.get("concurrency")
        context = RunContext(
            provider=_text(data.get("provider")),
            rpm=None if rpm is None else float(rpm),
            concurrency=None if concurrency is None else int(concurrency),
            price_per_10k_chars=DEFAULT_PRICE_PER_10K_CHARS if price is None else float(price),
            command=_text(data.get("command")),
        )
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the report ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: not a narrator JSON report ({exc.__class__.__name__}: {exc}); "
            "write one with narrate --report FILE.json"
        ) from exc
    return run, context


# A report is read back as data, whatever it holds: every field is coerced to its type
# here (a number that is not one, NaN or infinity, is refused), and the page escapes
# every string it shows.
def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not a number a report holds")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is not a number a report holds")
    return number


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _flag(f: dict[str, Any]) -> Flag:
    start = f.get("start")
    return Flag(
        chunk=int(f["chunk"]),
        text=str(f["text"]),
        kind=str(f["kind"]),
        reason=str(f["reason"]),
        measured=float(f["measured"]),
        expected=float(f["expected"]),
        attempts=int(f["attempts"]),
        start=None if start is None else float(start),
    )


def _voiced(v: dict[str, Any]) -> Voiced:
    return Voiced(
        chapter=int(v["chapter"]),
        speaker=str(v["speaker"]),
        voice=str(v["voice"]),
        chunks=int(v["chunks"]),
        characters=int(v["characters"]),
    )


def _document(d: dict[str, Any]) -> DocumentReport:
    return DocumentReport(
        input=str(d["input"]),
        output=str(d.get("output", "")),
        title=str(d.get("title", "")),
        status=Status(d["status"]),
        chunks=int(d.get("chunks", 0)),
        billing_characters=int(d.get("billing_characters", 0)),
        audio_seconds=float(d.get("audio_seconds", 0.0)),
        requests=int(d.get("requests", 0)),
        retries=int(d.get("retries", 0)),
        cached_chunks=int(d.get("cached_chunks", 0)),
        errors=tuple(str(e) for e in d.get("errors", ())),
        chapters=tuple(
            ChapterMark(str(c["title"]), float(c["start"])) for c in d.get("chapters", ())
        ),
        files=tuple(str(f) for f in d.get("files", ())),
        flagged=tuple(_flag(f) for f in d.get("flagged", ())),
        voices=tuple(_voiced(v) for v in d.get("voices", ())),
        warnings=tuple(str(w) for w in d.get("warnings", ())),
    )
