"""narrator: long text to audiobooks through remote text-to-speech services.

>>> import narrator
>>> settings = narrator.Settings(provider="espeak")
>>> narrator.narrate_sync("Hello there. This is narrator.", "hello.wav", settings)  # doctest: +SKIP

The public API is what this package exports (``narrator.__all__``), the error tree in
:mod:`narrator.errors`, many inputs at once in :mod:`narrator.batch` and the run report
(JSON or HTML) in :mod:`narrator.report`. Every other
module is internal and may change in any release: the stages ``narrator.inputs``,
``narrator.chunks``, ``narrator.synth`` and ``narrator.book``, the helpers in
``narrator.util``, the operations ``narrator.pipeline`` (with ``narrator.narration``,
``narrator.reports`` and ``narrator.uptodate``), the report's parts ``narrator.report_json``,
``narrator.report_page``, ``narrator.report_charts`` and ``narrator.report_format`` (use
``narrator.report``), ``narrator.check``,
``narrator.estimate`` and ``narrator.audition`` (use ``narrator.say``), ``narrator.settings`` and
``narrator.status`` (use ``narrator.Settings`` and ``narrator.Status``), the command
line ``narrator.cli`` and the tools ``narrator.tools`` (emulator, bench).
"""

import logging

from ._version import __version__
from .audition import Audition, say
from .chunks.lexicon import Lexicon
from .errors import NarrationFailed, NarratorError
from .inputs.documents import Chapter, Document, load_document, parse_text
from .pipeline import (
    DocumentReport,
    Flag,
    ProgressEvent,
    RunReport,
    Work,
    narrate,
    narrate_many,
    narrate_sync,
)
from .settings import AudiobookOptions, Settings
from .status import Status
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
