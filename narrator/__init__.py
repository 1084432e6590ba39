"""narrator: long text to audiobooks through remote text-to-speech services.

>>> import narrator
>>> settings = narrator.Settings(provider="espeak")
>>> narrator.narrate_sync("Hello there. This is narrator.", "hello.wav", settings)  # doctest: +SKIP
"""

import logging

from ._version import __version__
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
from .settings import Settings

# The library only logs; the application decides what is shown. Without a handler,
# Python's last-resort handler would print warnings to stderr.
logging.getLogger("narrator").addHandler(logging.NullHandler())

__all__ = [
    "Chapter",
    "Document",
    "DocumentReport",
    "Flag",
    "NarrationFailed",
    "NarratorError",
    "ProgressEvent",
    "RunReport",
    "Settings",
    "Work",
    "__version__",
    "load_document",
    "narrate",
    "narrate_many",
    "narrate_sync",
    "parse_text",
]
