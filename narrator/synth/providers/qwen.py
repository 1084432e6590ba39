"""What the AIML API and DashScope share: the ``qwen3-tts-flash`` voices and limit.

Both serve the same Alibaba model, so both count a Han character as 2 and take at
most 600 of those characters a request.
"""

from __future__ import annotations

from ...chunks.split import billing_chars
from ...util.registry import QWEN_VOICES, Voice

__all__ = ["MAX_CHARS", "VOICES", "billing_chars"]

MAX_CHARS = 600

VOICES: tuple[Voice, ...] = QWEN_VOICES  # the registry holds them, as data
