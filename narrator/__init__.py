"""narrator: long text to audiobooks through remote text-to-speech services.

>>> import narrator
>>> settings = narrator.Settings(provider="espeak")
>>> narrator.narrate_sync("Hello there. This is narrator.", "hello.wav", settings)  # doctest: +SKIP

The public API is what this package exports (``narrator.__all__``), the error tree in
:mod:`narrator.errors`, many inputs at once in :mod:`narrator.run.batch` and the run report
(JSON or HTML) in :mod:`narrator.report.writer`. Every other
module is internal and may change in any release: the stages ``narrator.inputs``,
``narrator.chunks``, ``narrator.store``, ``narrator.synth`` and ``narrator.book``, the
helpers in ``narrator.util``, the rooms above them (``narrator.run``: the pipeline, one
document's narration, results, up-to-date checks, ``check`` and ``say``;
``narrator.report``: use ``narrator.report.writer``; ``narrator.watch``: ``narrator watch``
and ``narrator status``; ``narrator.cluster``: several machines on one account, their
shared pace), ``narrator.estimate``, ``narrator.settings`` and
``narrator.run.status`` (use ``narrator.Settings`` and ``narrator.Status``), the command
line ``narrator.cli`` and the tools ``narrator.tools`` (emulator, bench).
"""

import logging

from ._version import __version__
from .chunks.lexicon import Lexicon
from .errors import NarrationFailed, NarratorError
from .inputs.documents import Chapter, Document, load_document, parse_text
from .run.audition import Audition, say
from .run.pipeline import (
    DocumentReport,
    Flag,
    ProgressEvent,
    RunReport,
    Work,
    narrate,
    narrate_many,
    narrate_sync,
)
from .run.status import Status
from .settings import AudiobookOptions, Settings
from .util.folders import default_cache_dir

# The library only logs; the application decides what is shown. Without a handler,
# Python's last-resort handler would print warnings to stderr.
logging.getLogger("narrator").addHandler(logging.NullHandler())

__all__ = [
    "AudiobookOptions",
    "Audition",
    "Chapter",
    "Document",
    "DocumentReport",
    "Flag",
    "Lexicon",
    "NarrationFailed",
    "NarratorError",
    "ProgressEvent",
    "RunReport",
    "Settings",
    "Status",
    "Work",
    "__version__",
    "default_cache_dir",
    "load_document",
    "narrate",
    "narrate_many",
    "narrate_sync",
    "parse_text",
    "say",
]
