"""A job: one document on the queue, and the one check every worker makes of it.

A job is an input source like a document: whoever can write to the queue can forge one.
So it carries only what shapes the book (the text as ``submit`` read it, where the book
goes below DEST, the options that change how it sounds) and is checked like the command
line before anything is sent (:func:`parse_job`): a path outside DEST, an endpoint, a key,
a spending limit or an unknown field is refused with one line saying which. What the
worker pays and where the key goes come from the worker's own command line and
environment, never from a job.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..book.encode import FORMATS as _AUDIO
from ..errors import ConfigError, JobRefused
from ..inputs.model import Chapter, Document
from ..settings import READ_ALONG_FORMAT, AudiobookOptions, Settings, check_lang
from ..util.sanitize import clean_line

__all__ = [
    "AUDIOBOOK_OPTIONS",
    "JOB_OPTIONS",
    "SCHEMA",
    "Job",
    "apply_options",
    "job_data",
    "make_job",
    "parse_job",
]

SCHEMA = 1  # a job of another version is refused, never guessed at

# What a job may set: how the book sounds and is cut (the SOUND class of the trust model,
# and max_chars and force, which only change how it is made). Nothing that names a path
# (cover, lexicon, cast, read_along), an endpoint, a key or a limit.
JOB_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "voice": str, "lang": str, "gap_ms": int, "chapter_gap_ms": int,
    "paragraph_gap_ms": int, "quote_gap_ms": int, "dialogue_voice": str,
    "speaker_lines": bool, "qa": str, "max_chars": int, "force": bool,
}  # fmt: skip
AUDIOBOOK_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "format": (str, type(None)), "title": (str, type(None)), "author": (str, type(None)),
    "album": (str, type(None)), "year": (str, type(None)), "normalize": bool,
    "split_hours": (int, float, type(None)), "subtitles": (str, type(None)),
    "clean_joins": (bool, type(None)), "cue": str,
}  # fmt: skip

_FIELDS = frozenset({"v", "id", "name", "dest", "output", "document", "options"})
_DOC_FIELDS = frozenset({"title", "chapters", "lang", "author", "warnings"})
_ID = re.compile(r"[0-9a-f]{32}")
_EXTENSIONS = frozenset({*_AUDIO, READ_ALONG_FORMAT})
MAX_NAME = 1000  # characters of a document's name or output path
MAX_CHAPTERS = 100_000
MAX_WARNINGS = 20
MAX_DEST = 2000


@dataclass(frozen=True, slots=True)
class Job:
    """A checked job: its id, the document's name (for people), DEST as ``submit`` was
    given it, the book's path below DEST, the document, and the options it sets."""

    id: str
    name: str
    dest: str
    output: str
    document: Document
    options: Mapping[str, Any]

    @property
    def chunks_hint(self) -> int:  # pragma: no cover - informative only
        return sum(len(c.paragraphs) for c in self.document.chapters)


def make_job(
    document: Document, *, name: str, dest: str, output: str, options: Mapping[str, Any]
) -> Job:
    """A new job (a fresh id); checked as a worker will check it, so ``submit`` refuses
    what every worker would."""
    job = Job(uuid.uuid4().hex, name, dest, output, document, dict(options))
    return parse_job(job_data(job), max_text_bytes=None)


def job_data(job: Job) -> dict[str, Any]:
    """The job as the queue carries it: JSON-ready."""
    doc = job.document
    return {
        "v": SCHEMA,
        "id": job.id,
        "name": job.name,
        "dest": job.dest,
        "output": job.output,
        "document": {
            "title": doc.title,
            "chapters": [[c.title, list(c.paragraphs)] for c in doc.chapters],
            "lang": doc.lang,
            "author": doc.author,
            "warnings": list(doc.warnings),
        },
        "options": dict(job.options),
    }


def _refuse(what: str, why: str) -> JobRefused:
    return JobRefused(f"job refused: {what}: {clean_line(why, limit=200)}")


def _text(data: Mapping[str, Any], key: str, limit: int = MAX_NAME) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit or "\0" in value:
        raise _refuse(key, f"not a name of 1 to {limit} characters")
    return value


def _output(value: str) -> str:
    """The book's path below DEST: relative, no ``..``, no backslash, a known extension."""
    path = PurePosixPath(value)
    if (
        value.startswith(("/", "~"))
        or "\\" in value
        or any(part in ("", ".", "..") for part in value.split("/"))
        or any(ord(c) < 32 or c == "\x7f" for c in value)
    ):
        raise _refuse("output", f"{value!r} is not a plain relative path below DEST")
    if path.suffix.lower().lstrip(".") not in _EXTENSIONS:
        raise _refuse("output", f"{value!r} does not end in an audiobook's extension")
    return value


def _document(data: Any, max_text_bytes: int | None, name: str) -> Document:
    if not isinstance(data, dict) or set(data) - _DOC_FIELDS or "chapters" not in data:
        extra = sorted(set(data) - _DOC_FIELDS) if isinstance(data, dict) else []
        raise _refuse(
            "document", f"not a document{' (unknown ' + str(extra) + ')' if extra else ''}"
        )
    title = data.get("title")
    if not isinstance(title, str) or len(title) > MAX_NAME:
        raise _refuse("document.title", "not a title")
    author = data.get("author")
    if author is not None and (not isinstance(author, str) or len(author) > MAX_NAME):
        raise _refuse("document.author", "not an author")
    lang = data.get("lang")
    if lang is not None:
        if not isinstance(lang, str):
            raise _refuse("document.lang", "not a language code")
        try:
            check_lang(lang)
        except ConfigError as exc:
            raise _refuse("document.lang", str(exc)) from None
    warnings = data.get("warnings", [])
    if (
        not isinstance(warnings, list)
        or len(warnings) > MAX_WARNINGS
        or not all(isinstance(w, str) for w in warnings)
    ):
        raise _refuse("document.warnings", "not a short list of lines")
    raw = data["chapters"]
    if not isinstance(raw, list) or len(raw) > MAX_CHAPTERS:
        raise _refuse("document.chapters", f"not a list of at most {MAX_CHAPTERS:,} chapters")
    chapters: list[Chapter] = []
    size = len(title.encode())
    for index, item in enumerate(raw):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not (item[0] is None or isinstance(item[0], str))
            or not isinstance(item[1], list)
            or not all(isinstance(p, str) for p in item[1])
        ):
            raise _refuse("document.chapters", f"chapter {index + 1} is not [title, [paragraphs]]")
        size += len((item[0] or "").encode()) + sum(len(p.encode()) for p in item[1])
        if max_text_bytes is not None and size > max_text_bytes:
            raise _refuse(
                "document", f"more than {max_text_bytes / 1e6:g} MB of text (--max-text-mb)"
            )
        chapters.append(Chapter(index, item[0], tuple(item[1])))
    return Document(
        title,
        tuple(chapters),
        # Not a path: no lexicon or cast is looked for beside it on the worker.
        source=f"<queue> {name}",
        lang=lang,
        warnings=tuple(clean_line(w) for w in warnings),
        author=author,
    )


def _options(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _refuse("options", "not a table of options")
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key == "audiobook":
            if not isinstance(value, dict):
                raise _refuse("options.audiobook", "not a table of options")
            for sub, subvalue in value.items():
                kind = AUDIOBOOK_OPTIONS.get(sub)
                if kind is None:
                    raise _refuse(f"options.audiobook.{sub}", _NOT_ALLOWED)
                if not isinstance(subvalue, kind) or (
                    isinstance(subvalue, bool) and bool not in _as_tuple(kind)
                ):
                    raise _refuse(
                        f"options.audiobook.{sub}", f"wrong type {type(subvalue).__name__}"
                    )
            options["audiobook"] = dict(value)
            continue
        kind = JOB_OPTIONS.get(key)
        if kind is None:
            raise _refuse(f"options.{key}", _NOT_ALLOWED)
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise _refuse(f"options.{key}", f"wrong type {type(value).__name__}")
        options[key] = value
    return options


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_NOT_ALLOWED = (
    "a job may set only how the book sounds (voice, language, gaps, format, tags); "
    "the endpoint, the key, paths and limits are the worker's own"
)


def parse_job(data: Any, *, max_text_bytes: int | None) -> Job:
    """The job in ``data`` (as the queue carried it), checked; :class:`JobRefused` naming
    the first thing wrong. ``max_text_bytes``: the most text the worker takes."""
    if not isinstance(data, dict):
        raise _refuse("job", "not a table")
    if data.get("v") != SCHEMA:
        raise _refuse("v", f"schema {data.get('v')!r}: this worker reads version {SCHEMA}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _refuse(unknown[0], "unknown field; " + _NOT_ALLOWED)
    job_id = data.get("id")
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise _refuse("id", "not a job id")
    name = clean_line(_text(data, "name"), limit=MAX_NAME)
    dest = _text(data, "dest", MAX_DEST)
    output = _output(_text(data, "output"))
    document = _document(data.get("document"), max_text_bytes, name)
    options = _options(data.get("options", {}))
    return Job(job_id, name, dest, output, document, options)


def apply_options(settings: Settings, options: Mapping[str, Any]) -> Settings:
    """The worker's settings with the job's options on top, checked as Settings checks
    every value (a bad voice or format: :class:`JobRefused`)."""
    plain = {k: v for k, v in options.items() if k != "audiobook"}
    book = options.get("audiobook", {})
    try:
        audiobook = dataclasses.replace(settings.audiobook, **book) if book else settings.audiobook
        return dataclasses.replace(settings, **plain, audiobook=audiobook)
    except ConfigError as exc:
        raise _refuse("options", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _refuse("options", str(exc)) from None


def audiobook_options(options: AudiobookOptions) -> dict[str, Any]:
    """The audiobook options a job carries (those :data:`AUDIOBOOK_OPTIONS` allows)."""
    return {name: getattr(options, name) for name in AUDIOBOOK_OPTIONS}
