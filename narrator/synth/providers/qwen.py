"""What the AIML API and DashScope share: the ``qwen3-tts-flash`` voices and limit.

Both serve the same Alibaba model, so both count a Han character as 2 and take at
most 600 of those characters a request.
"""

from __future__ import annotations

from ...chunks.split import billing_chars
from . import Voice

__all__ = ["MAX_CHARS", "VOICES", "billing_chars"]

MAX_CHARS = 600

# Language codes, as --lang takes them: Chinese (Mandarin) first, then the other nine.
_OTHERS = "en es ru it fr ko ja de pt"
_LANGUAGES = f"zh {_OTHERS}"


def _dialect(name: str, who: str, dialect: str) -> Voice:
    # Dialect voices read Chinese in their dialect; other languages as the standard voices do.
    return Voice(name, f"{who}; {dialect} Chinese; {_OTHERS}")


VOICES: tuple[Voice, ...] = (
    Voice("Cherry", f"female; {_LANGUAGES}"),
    Voice("Ethan", f"male; {_LANGUAGES}"),
    Voice("Nofish", f"male, without retroflexes; {_LANGUAGES}"),
    Voice("Jennifer", f"female, American English; {_LANGUAGES}"),
    Voice("Ryan", f"male, dramatic; {_LANGUAGES}"),
    Voice("Katerina", f"female, mature; {_LANGUAGES}"),
    Voice("Elias", f"female, lecturer; {_LANGUAGES}"),
    _dialect("Jada", "female", "Shanghainese"),
    _dialect("Dylan", "male", "Beijing"),
    _dialect("Sunny", "female", "Sichuanese"),
    _dialect("Li", "male", "Nanjing"),
    _dialect("Marcus", "male", "Shaanxi"),
    _dialect("Roy", "male", "Minnan"),
    _dialect("Peter", "male", "Tianjin"),
    _dialect("Rocky", "male", "Cantonese"),
    _dialect("Kiki", "female", "Cantonese"),
    _dialect("Eric", "male", "Sichuanese"),
)
