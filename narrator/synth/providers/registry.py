"""The provider registry's classes: each service's client class, held by reference.

The other half, :data:`narrator.util.registry.REGISTRY`, holds each service's defaults
and voices as plain data, for the settings (shared by every stage) to read without
reaching up into ``synth``. Here each class is imported by name, so the layout test sees
every provider module this package depends on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from ...errors import ConfigError
from ...util import registry as table
from ...util.registry import ProviderSpec, spec
from .aimlapi import AimlApiProvider
from .dashscope import DashScopeProvider
from .espeak import EspeakProvider
from .openai import OpenAiProvider

__all__ = ["CLASSES", "provider_class", "register"]

_CLASSES: dict[str, Any] = {
    "aimlapi": AimlApiProvider,
    "dashscope": DashScopeProvider,
    "openai": OpenAiProvider,
    "espeak": EspeakProvider,
}

#: Every provider's client class by name, as :data:`~narrator.util.registry.REGISTRY`
#: names them; read-only (see :func:`register`).
CLASSES: Mapping[str, Any] = MappingProxyType(_CLASSES)


def provider_class(name: str) -> Any:
    """The client class of the registered provider ``name``; :class:`ConfigError` for an
    unknown one. It takes the keywords :func:`~narrator.synth.providers.make_provider`
    passes."""
    spec(name)  # an unknown name: the registry's own error
    return _CLASSES[name]


@contextmanager
def register(entry: ProviderSpec, cls: Any) -> Iterator[ProviderSpec]:
    """Add a provider (its entry and its class) for the ``with`` block: plugins, tests."""
    if entry.name in _CLASSES:
        raise ConfigError(f"a provider called {entry.name!r} is already registered")
    with table.register(entry):
        _CLASSES[entry.name] = cls
        try:
            yield entry
        finally:
            del _CLASSES[entry.name]
