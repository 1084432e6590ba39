"""The provider registry: every text-to-speech service, declared once.

A :class:`ProviderSpec` holds what the rest of narrator needs to know about a service
before talking to it: its defaults (model, voice, pace, chunk limit, price), where its
key comes from, its endpoints by region, its voices and which of its voice lists is
complete. :class:`~narrator.settings.Settings`, the command line's choices and help, the
estimate and :func:`narrator.synth.providers.make_provider` all read :data:`REGISTRY`.

This table holds data only, no class: settings (shared by every stage) validate a
provider, its model and its voice here without reaching up into ``synth``. The client
classes are in the other half of the registry,
:data:`narrator.synth.providers.registry.CLASSES`, which imports each of them by name,
so every dependency is an import the layout test reads (no class named by a string).
The class gives the per-request limit and the character count (see
:class:`~narrator.synth.providers.Provider`); a test checks the two halves agree.

Adding a provider is one module with its class, one entry here and one in ``CLASSES``
(or, for a plugin or a test, one :func:`narrator.synth.providers.registry.register`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ..errors import ConfigError

__all__ = [
    "ESPEAK_VOICES",
    "OPENAI_VOICES",
    "QWEN_VOICES",
    "REGISTRY",
    "ProviderSpec",
    "Voice",
    "describe_pace",
    "register",
    "spec",
]

DEFAULT_REGION = "intl"


@dataclass(frozen=True, slots=True)
class Voice:
    """One voice of a service: its name and the languages or dialect it speaks."""

    name: str
    description: str


# Language codes, as --lang takes them: Chinese (Mandarin) first, then the other nine.
_OTHERS = "en es ru it fr ko ja de pt"
_LANGUAGES = f"zh {_OTHERS}"


def _dialect(name: str, who: str, dialect: str) -> Voice:
    # Dialect voices read Chinese in their dialect; other languages as the standard voices do.
    return Voice(name, f"{who}; {dialect} Chinese; {_OTHERS}")


#: The 17 voices of ``qwen3-tts-flash`` (the AIML API and DashScope serve the same model).
QWEN_VOICES: tuple[Voice, ...] = (
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

_MULTILINGUAL = "multilingual: speaks the language of the text"
#: OpenAI's voices. Other servers have their own (Kokoro: af_heart, am_adam, ...);
#: --voice passes any name through.
OPENAI_VOICES: tuple[Voice, ...] = tuple(
    Voice(name, f"{_MULTILINGUAL}{note}")
    for name, note in (
        ("alloy", ""),
        ("ash", ""),
        ("ballad", "; gpt-4o-mini-tts only"),
        ("coral", ""),
        ("echo", ""),
        ("fable", ""),
        ("nova", ""),
        ("onyx", ""),
        ("sage", ""),
        ("shimmer", ""),
        ("verse", "; gpt-4o-mini-tts only"),
    )
)

#: The offline voice stands in for each qwen voice (synth/espeakng.py holds how).
ESPEAK_VOICES: tuple[Voice, ...] = (
    Voice("Cherry", "female, English/Chinese"),
    Voice("Ethan", "male, English/Chinese"),
    Voice("Nofish", "male, designer, Chinese without retroflexes"),
    Voice("Jennifer", "female, American English"),
    Voice("Ryan", "male, English/Chinese, dramatic"),
    Voice("Katerina", "female, English/Chinese, mature"),
    Voice("Elias", "female, lecturer, English/Chinese"),
    Voice("Jada", "female, Shanghainese dialect"),
    Voice("Dylan", "male, Beijing dialect"),
    Voice("Sunny", "female, Sichuanese dialect"),
    Voice("Li", "male, Nanjing dialect"),
    Voice("Marcus", "male, Shaanxi dialect"),
    Voice("Roy", "male, Minnan dialect"),
    Voice("Peter", "male, Tianjin dialect"),
    Voice("Rocky", "male, Cantonese"),
    Voice("Kiki", "female, Cantonese"),
    Voice("Eric", "male, Sichuanese dialect"),
)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One text-to-speech service: every default it brings (its client class is in
    :data:`narrator.synth.providers.registry.CLASSES`, under the same name)."""

    name: str
    model: str  # an empty --model means this
    voice: str  # an empty --voice means this
    rpm: float  # requests per minute; math.inf: no limit at all
    concurrency: int  # requests in flight
    # Endpoint roots by region, the default region first. A service with one root has one.
    base_urls: Mapping[str, str]
    voices: tuple[Voice, ...] = ()  # what `narrator voices` lists; not necessarily all
    key_variable: str | None = None  # where the CLI looks for the key; the library never does
    key_required: bool = True  # False: the key is optional (local servers want none)
    price_per_10k_chars: float | None = None  # None: the estimate's assumed price
    # When is the voice list complete, so that an unknown voice is an error before any
    # request rather than the service's answer? "model": with the default model only;
    # "base_url": on the default endpoint only; "always"; "never".
    voices_complete: Literal["model", "base_url", "always", "never"] = "model"
    description: str = ""  # one line for --help
    networked: bool = True  # False: runs in-process, no endpoint is contacted
    # Billing characters per chunk when --max-chars is not given (capped at the class's
    # per-request limit). Chosen from the bench's "chunk size" rows: at a per-request
    # limit the requests, not the characters, set the wall time, so a service that takes
    # long texts gets long chunks; a kill loses at most the chunks in flight.
    max_chars: int = 600

    def base_url(self, region: str = DEFAULT_REGION) -> str:
        """The endpoint root for ``region``, else the default region's."""
        return self.base_urls.get(region) or next(iter(self.base_urls.values()))

    def voice_names(self) -> list[str]:
        return [v.name for v in self.voices]

    def list_is_complete(self, *, model: str, base_url: str) -> bool:
        """Whether an unknown voice is surely wrong for this model and endpoint."""
        if self.voices_complete == "model":
            return model == self.model
        if self.voices_complete == "base_url":
            return base_url.rstrip("/").removesuffix("/v1") == self.base_url()
        return self.voices_complete == "always"


_AIMLAPI = "https://api.aimlapi.com"

# The remote rates are conservative starting points (AIML and DashScope allow about
# 180/minute per account upstream; OpenAI's first tier 50); --rpm raises them. The
# offline voice has no service to protect: no limit, and one request in flight per core.
# DashScope's two regions are separate services with separate keys. "tts-1" is OpenAI's
# model, and OpenAI-compatible servers (Kokoro-FastAPI, ...) accept it as an alias.
_ENTRIES: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "aimlapi",
            model="alibaba/qwen3-tts-flash",
            voice="Cherry",
            rpm=60.0,
            concurrency=4,
            base_urls={"intl": _AIMLAPI},
            voices=QWEN_VOICES,
            key_variable="AIMLAPI_KEY",
            description="the AIML API",
        ),
        ProviderSpec(
            "dashscope",
            model="qwen3-tts-flash",
            voice="Cherry",
            rpm=60.0,
            concurrency=4,
            base_urls={
                "intl": "https://dashscope-intl.aliyuncs.com",
                "cn": "https://dashscope.aliyuncs.com",
            },
            voices=QWEN_VOICES,
            key_variable="DASHSCOPE_API_KEY",
            description="Alibaba Model Studio's native API",
        ),
        ProviderSpec(
            "openai",
            model="tts-1",
            voice="alloy",
            rpm=50.0,
            concurrency=4,
            base_urls={"intl": "https://api.openai.com"},
            voices=OPENAI_VOICES,
            key_variable="OPENAI_API_KEY",
            key_required=False,
            voices_complete="base_url",
            # 4,096 is the service's limit: a seventh of the requests of 600-character
            # chunks, so about a seventh of the wall time at 50 requests a minute.
            max_chars=4096,
            description="OpenAI and OpenAI-compatible servers",
        ),
        ProviderSpec(
            "espeak",
            model="espeak-ng",
            voice="Cherry",
            rpm=math.inf,
            concurrency=os.cpu_count() or 1,
            base_urls={"intl": _AIMLAPI},  # unused: eSpeak runs in-process
            voices=ESPEAK_VOICES,
            key_required=False,
            price_per_10k_chars=0.0,  # it runs on this machine: nothing to pay
            voices_complete="always",
            description="offline",
            networked=False,
        ),
    )
}

#: Every provider by name, in the order --help lists them; read-only (see :func:`register`).
REGISTRY: Mapping[str, ProviderSpec] = MappingProxyType(_ENTRIES)


def spec(name: str) -> ProviderSpec:
    """The registered provider called ``name``; :class:`ConfigError` for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r}; choose one of {', '.join(REGISTRY)}",
            setting="provider",
        ) from None


@contextmanager
def register(entry: ProviderSpec) -> Iterator[ProviderSpec]:
    """Add ``entry`` to this table for the ``with`` block; plugins and tests call
    :func:`narrator.synth.providers.registry.register`, which adds its class too."""
    if entry.name in _ENTRIES:
        raise ConfigError(f"a provider called {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    try:
        yield entry
    finally:
        del _ENTRIES[entry.name]


def describe_pace(name: str) -> str:
    """A provider's default rate and concurrency in words, for --help and `voices`."""
    entry = spec(name)
    if math.isinf(entry.rpm):  # the offline voice
        return f"no rate limit, one request in flight per core ({entry.concurrency} here)"
    return f"{entry.rpm:g} requests/minute, {entry.concurrency} in flight"
