"""A batch of inputs: where each audiobook goes, reading them into works, and the run report.

The command line and a library caller narrating many documents share this: inputs are
found (:func:`find_batch`), the output named before anything is read or fetched
(:func:`check_outputs`), read (:func:`read_batch`), given their outputs
(:func:`plan_works`), and after the run described as JSON (:func:`report_data`) with the
sums the summary shows (:func:`totals`). Inputs that never became documents keep their
place in the report (:func:`with_unread`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..book.encode import FORMATS
from ..errors import ConfigError, InputError
from ..inputs.documents import Document
from ..inputs.limits import DEFAULT_MAX_TEXT_BYTES
from ..inputs.sources import STDIN, Input, find_inputs, read_inputs, safe_filename
from ..settings import Settings
from ..util.atomic import atomic_write
from ..util.netpolicy import NetPolicy
from ..util.sanitize import storable_data
from .pipeline import DocumentReport, RunReport, Work
from .status import Status

__all__ = [
    "Batch", "Loaded", "check_outputs", "find_batch", "plan_outputs", "plan_works",
    "read_batch", "report_data", "totals", "unread_report", "with_unread", "write_report",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Batch:
    """The inputs found, in order, and whether there are several (or a folder)."""

    items: tuple[Input, ...]
    many: bool

    @property
    def reads_stdin(self) -> bool:
        return any(item.location == STDIN for item in self.items)

    @property
    def order(self) -> tuple[str, ...]:
        """Every input's name, in the order given."""
        return tuple(item.location for item in self.items)


@dataclass(frozen=True, slots=True)
class Loaded:
    """The inputs read: the documents with their inputs, and reports of those left out."""

    documents: tuple[tuple[Input, Document], ...]
    unread: tuple[DocumentReport, ...]


def find_batch(
    inputs: Sequence[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
) -> Batch:
    """Expand files, folders, ``-`` and URLs; :class:`ConfigError` when none is found."""
    items, many = find_inputs(
        inputs, include=include, exclude=exclude, follow_symlinks=follow_symlinks
    )
    if not items:
        raise ConfigError("no documents found in " + ", ".join(inputs))
    return Batch(tuple(items), many)


def check_outputs(batch: Batch, out: str | None, fmt: str | None = None) -> None:
    """Refuse a wrong -o before anything is read or fetched."""
    if not batch.many:
        if out is None and batch.items[0].location == STDIN:
            raise ConfigError("reading standard input needs -o FILE.wav")
        if out is not None:
            target = Path(out)
            folder = target.is_dir() or out.endswith(("/", os.sep))
            if not folder and fmt is None and target.suffix.lower().lstrip(".") not in FORMATS:
                raise ConfigError(
                    f"-o {out}: name the output with one of the extensions "
                    f"{', '.join('.' + f for f in FORMATS)}, or a folder, or pass --format"
                )
        return
    if out is None:
        raise ConfigError("several inputs or a folder need -o DIR for the audiobooks")
    if Path(out).suffix.lower().lstrip(".") in FORMATS:
        raise ConfigError(f"-o {out}: several inputs need a folder, not an audio file")


def unread_report(item: Input, status: Status, error: str) -> DocumentReport:
    """The report of an input that never became a document."""
    return DocumentReport(
        input=item.location, output="", title="", status=status, chunks=0,
        billing_characters=0, audio_seconds=0.0, requests=0, retries=0, cached_chunks=0,
        errors=(error,),
    )  # fmt: skip


async def read_batch(
    batch: Batch,
    *,
    stdin: bytes | None = None,
    timeout: float = 30.0,
    max_bytes: int = 20_000_000,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    policy: NetPolicy | None = None,
) -> Loaded:
    """Read every input (see :func:`~narrator.inputs.sources.read_inputs` for the knobs).

    A page that cannot be had is a failure; a local file that is not a readable document
    (a binary file in a folder, say) or holds nothing to narrate is only left out.
    """
    results = await read_inputs(
        batch.items,
        stdin=stdin,
        timeout=timeout,
        max_bytes=max_bytes,
        max_text_bytes=max_text_bytes,
        policy=policy,
    )
    loaded: list[tuple[Input, Document]] = []
    unread: list[DocumentReport] = []
    for item, result in zip(batch.items, results, strict=True):
        if isinstance(result, InputError):
            # Reported once, by the summary (or the estimate), which names the input itself.
            status = Status.FAILED if item.is_url else Status.SKIPPED
            message = str(result).removeprefix(f"{item.location}: ")
            unread.append(unread_report(item, status, message))
        elif result.is_empty:
            unread.append(unread_report(item, Status.SKIPPED, "empty: nothing to narrate"))
        else:
            loaded.append((item, result))
    return Loaded(tuple(loaded), tuple(unread))


def plan_outputs(
    loaded: Sequence[tuple[Input, Document]], many: bool, out: str | None, fmt: str | None = None
) -> list[Path]:
    """Where each audiobook goes: beside its input, at -o, or mirrored under -o DIR.

    A URL's audiobook is named after the page title, made safe for any filesystem.
    """
    relatives = [item.relative or Path(safe_filename(doc.title)) for item, doc in loaded]
    ext = f".{fmt or 'wav'}"  # a folder gets WAV audiobooks unless --format says otherwise
    if not many:
        ((item, _),) = loaded
        (relative,) = relatives
        if out is None:
            if item.is_url:
                return [Path(f"{relative}{ext}")]
            return [Path(item.location).with_suffix(ext)]
        target = Path(out)
        if target.is_dir() or out.endswith(("/", os.sep)):
            return [target / f"{relative.name}{ext}"]
        return [target]
    assert out is not None  # check_outputs refused it
    root = Path(out)
    outputs: list[Path] = []
    taken: set[Path] = set()
    for relative in relatives:
        candidate = root / f"{relative}{ext}"
        n = 2
        while candidate in taken:  # two inputs with one name: keep both
            candidate = root / f"{relative}-{n}{ext}"
            n += 1
        taken.add(candidate)
        outputs.append(candidate)
    return outputs


def plan_works(batch: Batch, loaded: Loaded, out: str | None, fmt: str | None = None) -> list[Work]:
    """The documents to narrate, each with where its audiobook goes."""
    if not loaded.documents:
        return []
    outputs = plan_outputs(loaded.documents, batch.many, out, fmt)
    return [Work(doc, path) for (_, doc), path in zip(loaded.documents, outputs, strict=True)]


def with_unread(
    run: RunReport, unread: Sequence[DocumentReport], inputs: Sequence[str]
) -> RunReport:
    """``run`` with the inputs that never became documents in their place, in input order."""
    if not unread:
        return run
    order = {name: n for n, name in enumerate(inputs)}
    merged = sorted([*unread, *run.documents], key=lambda d: order.get(d.input, 0))
    return dataclasses.replace(run, documents=tuple(merged))


def totals(run: RunReport) -> dict[str, int | float]:
    """The run's sums: documents by status, chunks, characters, audio, errors, flags."""
    docs = run.documents
    return {
        "documents": len(docs),
        "done": sum(d.status == Status.DONE for d in docs),
        "up_to_date": sum(d.status == Status.UP_TO_DATE for d in docs),
        "failed": sum(d.status == Status.FAILED for d in docs),
        "skipped": sum(d.status == Status.SKIPPED for d in docs),
        "stopped": sum(d.status == Status.STOPPED for d in docs),
        "chunks": sum(d.chunks for d in docs),
        "billing_characters": sum(d.billing_characters for d in docs),
        "audio_seconds": round(sum(d.audio_seconds for d in docs), 3),
        "requests": run.requests,
        "retries": run.retries,
        "errors": sum(len(d.errors) for d in docs if not d.ok),
        "flagged": sum(len(d.flagged) for d in docs),
    }


def report_data(run: RunReport, settings: Settings | None = None) -> dict[str, Any]:
    """The run as the JSON report holds it. Each document's ``chunks`` and
    ``billing_characters`` count every chunk it is made of; its ``requests`` and
    ``retries`` count a chunk that several documents share once, in the first that asked
    for it, so they add up to the run's."""
    pace: dict[str, Any] = {}
    if settings is not None:  # what the run was allowed: null rpm means no limit
        rpm = None if math.isinf(settings.rpm) else settings.rpm
        pace = {"provider": settings.provider, "rpm": rpm, "concurrency": settings.concurrency}
    return {
        **pace,
        "documents": [dataclasses.asdict(d) for d in run.documents],
        "requests": run.requests,
        "retries": run.retries,
        "throttled": run.throttled,
        "resynthesized": run.resynthesized,
        "qa_resynthesized": run.qa_resynthesized,
        "qa_budget_spent": run.qa_budget_spent,
        "seconds": run.seconds,
        "stopped": run.stopped,
        "ok": run.ok,
        "errors": [f"{d.input}: {e}" for d in run.documents if not d.ok for e in d.errors],
        "totals": totals(run),
    }


def write_report(path: Path, run: RunReport, settings: Settings | None = None) -> None:
    """Write :func:`report_data` to ``path`` as indented UTF-8 JSON, atomically."""
    data = report_data(run, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(storable_data(data), indent=2, ensure_ascii=False) + "\n")
