"""The provider registry: every text-to-speech service, declared once.

A :class:`ProviderSpec` holds what the rest of narrator needs to know about a service
before talking to it: its defaults (model, voice, pace, chunk limit, price), where its
key comes from, its endpoints by region and which of its voice lists is complete.
:class:`~narrator.settings.Settings`, the command line's choices and help, the estimate
and :func:`narrator.synth.providers.make_provider` all read :data:`REGISTRY`.

The entry names its client class by import path (``"package.module:Class"``, as a
packaging entry point does) rather than holding it: settings and ``--help`` read the
defaults without importing any service's client, and this module, shared by every
stage, imports none of them. The class gives the voices, the per-request limit and the
character count (see :class:`~narrator.synth.providers.Provider`).

Adding a provider is one module with its class and one entry here (or, for a plugin or
a test, one :func:`register` call).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["REGISTRY", "ProviderSpec", "describe_pace", "load", "register", "spec"]

DEFAULT_REGION = "intl"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One text-to-speech service: its client class and every default it brings."""

    name: str
    factory: str  # "module:Class"; the class takes the keywords make_provider passes
    model: str  # an empty --model means this
    voice: str  # an empty --voice means this
    rpm: float  # requests per minute; math.inf: no limit at all
    concurrency: int  # requests in flight
    # Endpoint roots by region, the default region first. A service with one root has one.
    base_urls: Mapping[str, str]
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

    def provider_class(self) -> Any:
        """The client class (imported now, on first use)."""
        return load(self.factory)

    def voice_names(self) -> list[str]:
        return [v.name for v in self.provider_class().voices]

    def list_is_complete(self, *, model: str, base_url: str) -> bool:
        """Whether an unknown voice is surely wrong for this model and endpoint."""
        if self.voices_complete == "model":
            return model == self.model
        if self.voices_complete == "base_url":
            return base_url.rstrip("/").removesuffix("/v1") == self.base_url()
        return self.voices_complete == "always"


def load(path: str) -> Any:
    """The object at ``"module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


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
            "narrator.synth.providers.aimlapi:AimlApiProvider",
            model="alibaba/qwen3-tts-flash",
            voice="Cherry",
            rpm=60.0,
            concurrency=4,
            base_urls={"intl": _AIMLAPI},
            key_variable="AIMLAPI_KEY",
            description="the AIML API",
        ),
        ProviderSpec(
            "dashscope",
            "narrator.synth.providers.dashscope:DashScopeProvider",
            model="qwen3-tts-flash",
            voice="Cherry",
            rpm=60.0,
            concurrency=4,
            base_urls={
                "intl": "https://dashscope-intl.aliyuncs.com",
                "cn": "https://dashscope.aliyuncs.com",
            },
            key_variable="DASHSCOPE_API_KEY",
            description="Alibaba Model Studio's native API",
        ),
        ProviderSpec(
            "openai",
            "narrator.synth.providers.openai:OpenAiProvider",
            model="tts-1",
            voice="alloy",
            rpm=50.0,
            concurrency=4,
            base_urls={"intl": "https://api.openai.com"},
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
            "narrator.synth.providers.espeak:EspeakProvider",
            model="espeak-ng",
            voice="Cherry",
            rpm=math.inf,
            concurrency=os.cpu_count() or 1,
            base_urls={"intl": _AIMLAPI},  # unused: eSpeak runs in-process
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
    """Add ``entry`` to the registry for the ``with`` block (plugins, tests)."""
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
