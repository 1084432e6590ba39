"""Who may set what: narrator's one trust model, written down here and enforced from here.

What narrator reads is data, never authority, unless it comes from you. Every source
(:data:`SOURCES`) and every setting (:data:`FLAGS`, :data:`SETTINGS`) is classified by
the :class:`Kind` of thing it decides; :data:`COMMANDS` says which sources each command
meets. A settings file found in the current folder may come with a downloaded project:
it may set what :data:`FOUND_MAY` holds (how the book sounds and is paced, which files
of your folders are read) and paths inside its own folder, and nothing else, unless you
confirm it (``--trust-settings``, remembered by path and content in
:class:`TrustedFiles`, so a changed file is asked about again) or name it
(``--config``). :func:`refuse_found` is the check; the CLI calls it for every command
that reads a settings file, before anything is read, sent or paid for.

``tests/test_trust.py`` fails when a command, a flag or a field of :class:`Settings` is
missing here, and ``docs/security.md`` prints the same table.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sanitize import clean_line

__all__ = [
    "COMMANDS",
    "FLAGS",
    "FOUND_MAY",
    "FROM_NO_FILE",
    "SETTINGS",
    "SOURCES",
    "CommandTrust",
    "Kind",
    "Source",
    "TrustedFiles",
    "digest",
    "refuse_found",
    "trusted_list",
]


class Kind(Enum):
    """What a setting decides; the value is how the table names it."""

    SOUND = "how the book sounds and looks (voice, language, gaps, format, tags, respellings)"
    PACE = "how requests are paced, sized, retried and shown (never how many are paid)"
    SELECT = "which files of the folders you named are read"
    PATH = "a file or folder narrator reads or writes"
    COMMAND = "a program narrator runs"
    ENDPOINT = "where requests (and the key) go, and which service and model is paid"
    SPEND = "a spending, deleting or size limit"
    GUARD = "a guard lifted (--yes, --trust-settings, private addresses, links)"
    SECRET = "the API key"
    INPUT = "what to narrate, say, show or serve"
    TOOL = "the emulator's own knobs (narrator serve)"
    SERVICE = (
        "a shared service's URL: the queue, the shared store and pace, object storage (it may "
        "carry a password: shown masked, never in a job or a report)"
    )


# What a settings file found in the current folder may set without being confirmed;
# a PATH too, when it resolves inside the file's own folder.
FOUND_MAY = frozenset({Kind.SOUND, Kind.PACE, Kind.SELECT})
# What no settings file sets, even one you name: the command line (or the environment,
# for the key) only. A file cannot vouch for itself or lift a guard.
FROM_NO_FILE = frozenset({Kind.GUARD, Kind.SECRET, Kind.INPUT, Kind.TOOL, Kind.SERVICE})

_K = Kind
# Every option of every command, by destination (a settings file's key is the same
# name, dashes or underscores). One name is one kind in every command.
FLAGS: Mapping[str, Kind] = {
    # what to work on
    "inputs": _K.INPUT, "text": _K.INPUT, "run": _K.INPUT, "folder": _K.INPUT,
    "action": _K.INPUT, "config": _K.GUARD,
    # how the book sounds and looks
    "voice": _K.SOUND, "lang": _K.SOUND, "gap_ms": _K.SOUND, "chapter_gap_ms": _K.SOUND,
    "paragraph_gap_ms": _K.SOUND, "format": _K.SOUND, "title": _K.SOUND, "author": _K.SOUND,
    "album": _K.SOUND, "year": _K.SOUND, "normalize": _K.SOUND, "split_hours": _K.SOUND,
    "subtitles": _K.SOUND, "clean_joins": _K.SOUND, "qa": _K.SOUND,
    "dialogue_voice": _K.SOUND, "speaker_lines": _K.SOUND, "quote_gap_ms": _K.SOUND,
    "cue": _K.SOUND,
    # pace and behaviour
    "concurrency": _K.PACE, "rpm": _K.PACE, "max_chars": _K.PACE, "retries": _K.PACE,
    "backoff": _K.PACE, "stall_timeout": _K.PACE, "fetch_timeout": _K.PACE,
    "assume_latency": _K.PACE, "quiet": _K.PACE, "dry_run": _K.PACE, "force": _K.PACE,
    "settle": _K.PACE, "until": _K.PACE, "order": _K.PACE,
    "documents": _K.PACE, "heartbeat": _K.PACE, "wait": _K.PACE, "json": _K.PACE,
    "include": _K.SELECT, "exclude": _K.SELECT,
    # paths
    "output": _K.PATH, "report": _K.PATH, "cache_dir": _K.PATH, "cover": _K.PATH,
    "lexicon": _K.PATH, "cast": _K.PATH, "read_along": _K.PATH,
    "on_done": _K.COMMAND,
    "base_url": _K.ENDPOINT, "provider": _K.ENDPOINT, "model": _K.ENDPOINT,
    "region": _K.ENDPOINT,
    # several machines: where the jobs, the shared store and the segment audio live
    "queue": _K.SERVICE, "queue_name": _K.SERVICE, "store_url": _K.SERVICE,
    "objects_url": _K.SERVICE,
    # what may be spent, deleted or taken in
    "max_cost": _K.SPEND, "confirm_above": _K.SPEND, "price_per_10k_chars": _K.SPEND,
    "budget_per_day": _K.SPEND, "cache_max_size": _K.SPEND, "qa_retries": _K.SPEND,
    "qa_budget": _K.SPEND, "max_text_mb": _K.SPEND, "max_page_mb": _K.SPEND,
    "fix": _K.SPEND, "older_than": _K.SPEND, "max_size": _K.SPEND, "tries": _K.SPEND,
    "yes": _K.GUARD, "trust_settings": _K.GUARD, "allow_host": _K.GUARD,
    "allow_private_network": _K.GUARD, "follow_symlinks": _K.GUARD,
    "api_key": _K.SECRET,
    # narrator serve
    "host": _K.TOOL, "port": _K.TOOL, "max_concurrency": _K.TOOL, "latency": _K.TOOL,
    "latency_per_char": _K.TOOL, "fail_rate": _K.TOOL, "shape": _K.TOOL, "engine": _K.TOOL,
    "url_ttl": _K.TOOL, "drop_rate": _K.TOOL, "truncate_rate": _K.TOOL, "credits": _K.TOOL,
    "retry_after": _K.TOOL, "seed": _K.TOOL, "bad_audio_rate": _K.TOOL,
    "bad_audio_kinds": _K.TOOL, "api": _K.TOOL,
}  # fmt: skip

# Every field of the library's Settings and AudiobookOptions ("audiobook.NAME").
SETTINGS: Mapping[str, Kind] = {
    "provider": _K.ENDPOINT, "api_key": _K.SECRET, "base_url": _K.ENDPOINT,
    "model": _K.ENDPOINT, "voice": _K.SOUND, "region": _K.ENDPOINT, "concurrency": _K.PACE,
    "rpm": _K.PACE, "max_chars": _K.PACE, "lang": _K.SOUND, "gap_ms": _K.SOUND,
    "chapter_gap_ms": _K.SOUND, "paragraph_gap_ms": _K.SOUND, "audiobook": _K.SOUND,
    "cache_dir": _K.PATH, "store_url": _K.SERVICE, "cache_max_bytes": _K.SPEND, "retries": _K.PACE,
    "backoff_base": _K.PACE, "backoff_max": _K.PACE, "adaptive_rate": _K.PACE,
    "request_timeout": _K.PACE, "stall_timeout": _K.PACE, "max_segment_bytes": _K.SPEND,
    "allow_hosts": _K.GUARD, "allow_private_network": _K.GUARD, "force": _K.PACE,
    "qa": _K.SOUND, "qa_retries": _K.SPEND, "qa_budget": _K.SPEND, "lexicon": _K.PATH,
    "lexicon_override": _K.PATH, "max_text_bytes": _K.SPEND,
    "dialogue_voice": _K.SOUND, "cast": _K.PATH, "cast_override": _K.PATH,
    "speaker_lines": _K.SOUND, "quote_gap_ms": _K.SOUND, "objects_url": _K.SERVICE,
    "audiobook.format": _K.SOUND, "audiobook.title": _K.SOUND, "audiobook.author": _K.SOUND,
    "audiobook.album": _K.SOUND, "audiobook.year": _K.SOUND, "audiobook.cover": _K.PATH,
    "audiobook.normalize": _K.SOUND, "audiobook.target_lufs": _K.SOUND,
    "audiobook.true_peak": _K.SOUND, "audiobook.split_hours": _K.SOUND,
    "audiobook.subtitles": _K.SOUND, "audiobook.clean_joins": _K.SOUND,
    "audiobook.cue": _K.SOUND, "audiobook.read_along": _K.PATH,
    # the Redis several workers pace in: its URL may hold a password
    "pacing_url": _K.SERVICE,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Source:
    """One row of the trust table."""

    name: str
    may: str
    never: str
    bounded_by: str


_SOUND = "how the book sounds (voice, gaps, format, tags, respellings), the pace"
SOURCES: tuple[Source, ...] = (
    Source(
        "command line",
        "everything",
        "—",
        "--confirm-above / --max-cost before anything is paid",
    ),
    Source(
        "environment",
        "the key ($AIMLAPI_KEY...), $NARRATOR_BASE_URL, the cache and config folders (XDG); "
        "a worker's or submit's services ($NARRATOR_QUEUE, _STORE, _OBJECTS)",
        "any other setting",
        "—",
    ),
    Source(
        "settings file named (--config FILE)",
        "every setting",
        "a secret, a guard (--yes, --trust-settings, --allow-*), the inputs",
        "values checked like the flags'",
    ),
    Source(
        "settings file found (./narrator.toml)",
        f"{_SOUND}; paths inside its own folder",
        "a command (on_done), a path outside its folder, an endpoint (base_url, provider, "
        "model, region), a spending limit — unless confirmed with --trust-settings "
        "(remembered by path and content) or named with --config",
        "refused in one line, exit 2, before anything is read or paid",
    ),
    Source(
        "lexicon named (--lexicon, or by a named settings file)",
        "respellings",
        "anything else",
        "8 MiB a file, regex time per document, spoken text at most --max-text-mb",
    ),
    Source(
        "lexicon found (lexicon.toml, NAME.lexicon.toml beside a document; one a found "
        "settings file names)",
        "respellings of that document",
        "anything else",
        "8 MiB a file, regex time per document, spoken text at most --max-text-mb",
    ),
    Source(
        "cast named (--cast, or by a named settings file)",
        "voices for the narrator, quoted speech, speakers and chapters",
        "anything else",
        "64 KiB, 256 names, 16 aliases each; every voice one the provider knows",
    ),
    Source(
        "cast found (cast.toml, NAME.cast.toml beside a document; one a found settings "
        "file names, in its own folder)",
        "voices for that document's narrator, quoted speech, speakers and chapters",
        "anything else (a path, a command, an endpoint, a limit)",
        "64 KiB, 256 names, 16 aliases each; every voice one the provider knows; at "
        "most one request per quotation",
    ),
    Source(
        "document and its file name",
        "the text spoken, chapter titles and tags",
        "any setting; control characters on a terminal, in tags or the feed",
        "--max-text-mb, EPUB inflation, links out of a folder skipped",
    ),
    Source(
        "the store (cache database)",
        "which segments are reused, the watch queue",
        "a path outside the cache; a schema it does not know",
        "rows checked against the cache folder",
    ),
    Source(
        "the object store (objects_url)",
        "the audio of a segment it holds under that segment's key",
        "a path outside the cache; an endpoint; credentials in its URL",
        "the size cap for one segment, the WAV check every segment passes",
    ),
    Source(
        "a service's answer",
        "the audio of one chunk, an error message",
        "a private address (unless allowed), a header or key in a log",
        "answer and download sizes, WAV header sanity, audio length per character",
    ),
    Source(
        "a job (narrator worker, from the queue)",
        "the text spoken, its book's path below DEST, how it sounds (voice, gaps, format, tags)",
        "a path outside DEST or the worker's -o, an endpoint, a key, a spending limit, a "
        "file to read; any field it does not know",
        "refused in one line before anything is sent; --max-text-mb and the worker's own "
        "--max-cost / --confirm-above; --tries",
    ),
    Source(
        "the queue's state (status, submit --wait)",
        "what status and submit show of each document",
        "control characters on a terminal",
        "every field shown through one function; a week's TTL",
    ),
    Source(
        "a run report (narrator report RUN.json)",
        "the page's contents",
        "markup or script in the page",
        "every field escaped",
    ),
)

# Which sources each command meets, by row name prefix, and whether it reads a settings
# file at all (only those take --config and --trust-settings).
_RUN = (
    "command line", "environment", "settings file named", "settings file found",
    "lexicon named", "lexicon found", "document", "the store", "a service",
    "cast named", "cast found",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CommandTrust:
    settings_file: bool
    sources: tuple[str, ...]


COMMANDS: Mapping[str, CommandTrust] = {
    "narrate": CommandTrust(True, _RUN),
    "check": CommandTrust(True, _RUN),
    "watch": CommandTrust(True, _RUN),
    "say": CommandTrust(True, (*_RUN[:5], "a service")),
    "estimate": CommandTrust(True, (*_RUN[:7], *_RUN[9:])),
    "cast": CommandTrust(True, (*_RUN[:4], "document", *_RUN[9:])),
    "words": CommandTrust(True, _RUN[:7]),
    "cache": CommandTrust(False, ("command line", "environment", "the store")),
    "status": CommandTrust(False, ("command line", "environment", "the store", "the queue")),
    # A worker reads no document beside anything: the text comes in its job.
    "worker": CommandTrust(True, (*_RUN[:5], "the store", "a service", "cast named", "a job")),
    "submit": CommandTrust(True, (*_RUN[:8], "cast named", "cast found", "the queue")),
    "feed": CommandTrust(False, ("command line", "document")),
    "report": CommandTrust(False, ("command line", "a run report")),
    "demo": CommandTrust(False, ("command line", "document", "a service")),
    "serve": CommandTrust(False, ("command line",)),
    "voices": CommandTrust(False, ("command line",)),
}


def digest(data: bytes) -> str:
    """What a confirmed file is remembered by, with its path."""
    return hashlib.sha256(data).hexdigest()


class TrustedFiles:
    """Settings files the user confirmed, one ``SHA256 PATH`` line each, in ``path``
    (the CLI's: under ``$XDG_CONFIG_HOME/narrator``). A file whose content changed is
    no longer trusted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        pairs = (line.partition(" ") for line in text.splitlines())
        return {where: sha for sha, _, where in pairs if where}

    def trusted(self, file: Path, sha: str) -> bool:
        return self._lines().get(str(file.resolve())) == sha

    def remember(self, file: Path, sha: str) -> None:
        """Add ``file`` at ``sha`` (replacing an older one); :class:`OSError` if the
        list cannot be written."""
        lines = self._lines()
        lines[str(file.resolve())] = sha
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temp.write_text("".join(f"{s} {p}\n" for p, s in sorted(lines.items())), "utf-8")
        temp.replace(self.path)


def _inside(value: Any, folder: Path) -> bool:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or not (folder / item).resolve().is_relative_to(folder):
            return False
    return True


def refuse_found(path: Path, values: Mapping[str, Any], effective: Collection[str]) -> None:
    """Raise a one-line :class:`ConfigError` when the settings file ``path``, found and
    not confirmed, sets what it may not. ``values``: the file's settings (keys as
    written); ``effective``: the option names whose value the file changed for this
    command (a flag given on the command line wins, so it is not the file's)."""
    folder = path.parent.resolve()
    refused: list[tuple[str, str]] = []
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in effective:
            continue
        kind = FLAGS.get(key, Kind.GUARD)
        if kind in FOUND_MAY or (kind is Kind.PATH and _inside(value, folder)):
            continue
        why = "a path outside its folder" if kind is Kind.PATH else _WHAT[kind]
        refused.append((raw_key, why))
    if not refused:
        return
    key, why = refused[0]
    shown = clean_line(repr(values[key]), limit=80)
    more = f" (and {', '.join(k for k, _ in refused[1:])})" if refused[1:] else ""
    raise ConfigError(
        f"{path}: {key} = {shown}{more}: {why}, not taken from a settings file found in "
        "the current folder; if the file is yours, confirm it with --trust-settings "
        f"(remembered until it changes) or name it with --config {path}"
    )


_WHAT = {
    Kind.COMMAND: "a command",
    Kind.ENDPOINT: "an endpoint (where the key goes, what is paid)",
    Kind.SPEND: "a spending limit",
    Kind.GUARD: "a guard",
    Kind.SECRET: "a secret",
    Kind.INPUT: "an input",
    Kind.TOOL: "an emulator knob",
    Kind.SERVICE: "a shared service's URL",
}


def trusted_list(env: Mapping[str, str]) -> Path:
    """Where confirmed settings files are remembered: ``$XDG_CONFIG_HOME/narrator``, else
    ``~/.config/narrator``, never a folder a found file could name."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "narrator" / "trusted-settings"
