"""What the store's database holds: its tables, written down once (SQLite's dialect).

:mod:`.db` makes them and checks a database against them; each repository module reads
and writes its own tables.
"""

from __future__ import annotations

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "TABLES"]

# SQLite's application_id of a narrator store: "NARR".
APPLICATION_ID = 0x4E415252
# The schema this version writes; a store stamped with a larger one is refused.
# 0: unstamped (every store before the stamp); 1: the tables below, stamped.
SCHEMA_VERSION = 1

# One row per segment key (see segments.py for the states).
_SEGMENTS = """
CREATE TABLE IF NOT EXISTS segments (
    key           TEXT PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('pending','synthesized','downloaded','failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    billing_chars INTEGER NOT NULL,
    url           TEXT,
    url_at        REAL,
    path          TEXT,
    frames        INTEGER,
    rate          INTEGER,
    channels      INTEGER,
    width         INTEGER,
    error         TEXT,
    updated       REAL NOT NULL
)
"""
# One row per audiobook written: what it was made from, and the file as it was left,
# so a rerun can tell an up-to-date audiobook from a stale, edited or missing one.
_BOOKS = """
CREATE TABLE IF NOT EXISTS books (
    output      TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    updated     REAL NOT NULL
)
"""
# The audio files of each book: one row, or one per part when --split-hours cut it.
# A book with rows here is checked file by file (its own name may not exist at all).
_BOOK_FILES = """
CREATE TABLE IF NOT EXISTS book_files (
    output   TEXT NOT NULL,
    number   INTEGER NOT NULL,
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (output, number)
)
"""
# Which process is synthesizing which chunk, until when (see claims.py).
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
)
"""
# The quality gate's verdict on each segment's audio (see quality.py). ``status``:
# passed; provisional (passed while the run's speech rate was still the prior's guess);
# retrying (judged bad, synthesized again; ``best`` is the least bad attempt so far, its
# file set aside under segments/qa/); flagged (bad on every attempt, the best one kept).
# A pass also stores what it taught (``voice_key``, ``script``, ``rate``), so a later run
# starts from this voice's measured speech rate instead of the prior.
_VERDICTS = """
CREATE TABLE IF NOT EXISTS verdicts (
    key         TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('passed','provisional','retrying','flagged')),
    attempts    INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    measurement TEXT NOT NULL,
    best        TEXT,
    voice_key   TEXT,
    script      TEXT,
    rate        REAL,
    updated     REAL NOT NULL
)
"""
# One row per (segment, document that uses it): the time it was last used, and the run.
_USES = """
CREATE TABLE IF NOT EXISTS uses (
    key      TEXT NOT NULL,
    document TEXT NOT NULL,
    owner    TEXT NOT NULL,
    used     REAL NOT NULL,
    PRIMARY KEY (key, document)
)
"""
# The runs in progress (see usage.py).
_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    owner   TEXT PRIMARY KEY,
    started REAL NOT NULL
)
"""
# A watcher's inbox, one row per document (see queue.py).
_WATCH_QUEUE = """
CREATE TABLE IF NOT EXISTS watch_queue (
    input   TEXT PRIMARY KEY,
    output  TEXT NOT NULL,
    state   TEXT NOT NULL,
    detail  TEXT NOT NULL,
    keys    TEXT NOT NULL,
    updated REAL NOT NULL
)
"""

# Every table, by name, in the order they are made.
TABLES = {
    "segments": _SEGMENTS,
    "books": _BOOKS,
    "book_files": _BOOK_FILES,
    "claims": _CLAIMS,
    "verdicts": _VERDICTS,
    "uses": _USES,
    "runs": _RUNS,
    "watch_queue": _WATCH_QUEUE,
}
