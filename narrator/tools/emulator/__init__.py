"""The loopback stand-in for the TTS services; see :mod:`.server`."""

from .server import *  # noqa: F403
from .server import __all__ as __all__
