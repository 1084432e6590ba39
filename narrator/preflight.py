"""Checks made before anything is sent: the voice, the language, the model.

A wrong setting found here costs nothing; found by the service it costs a request
(see the pool's probe), and before these checks existed it cost one per chunk.
"""

from __future__ import annotations

import re

from .errors import ConfigError

# Sentence-splitting languages: pysbd's, plus those the splitter reads with English
# rules on purpose (Korean, Portuguese) and DashScope's names for Chinese.
LANGUAGES = (
    "am ar bg cmn da de el en es fa fr hi hy it ja kk ko mr my nl pl pt ru sk ur yue zh"
).split()
_LANG = re.compile(r"(?P<code>[a-z]{2,3})(?:[-_][a-z0-9]{2,8})*")
# Model names are path-like identifiers ("alibaba/qwen3-tts-flash", "tts-1").
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


def check_lang(lang: str) -> None:
    """Accept ``auto`` or a known language code, with or without a region (``en-US``)."""
    value = lang.strip().lower()
    match = _LANG.fullmatch(value)
    if value == "auto" or (match and match["code"] in LANGUAGES):
        return
    raise ConfigError(f"--lang {lang}: unknown language; use auto or one of {', '.join(LANGUAGES)}")


def check_model(provider: str, model: str) -> None:
    """A model name must look like one; the offline voice has exactly one."""
    if provider == "espeak" and model != "espeak-ng":
        raise ConfigError(f"--model {model}: the espeak provider has one model, espeak-ng")
    if not _MODEL.fullmatch(model) or len(model) > 200:
        raise ConfigError(f"--model {model!r}: not a model name (e.g. alibaba/qwen3-tts-flash)")


def check_voice(provider: str, voice: str, *, model: str, base_url: str) -> str:
    """The voice in the service's own spelling (``cherry`` becomes ``Cherry``).

    Known voices are matched case-insensitively. An unknown voice is an error where the
    list is complete: the qwen voices with the default model, eSpeak's, OpenAI's on
    OpenAI itself. Another model or an OpenAI-compatible server may have voices of its
    own, so there the name goes through as given (the first request tells).
    """
    from .settings import DEFAULT_BASE_URLS, DEFAULT_MODELS
    from .synth.providers import provider_voices

    names = [v.name for v in provider_voices(provider)]
    by_folded = {name.casefold(): name for name in names}
    found = by_folded.get(voice.strip().casefold())
    if found is not None:
        return found
    complete = {
        "aimlapi": model == DEFAULT_MODELS["aimlapi"],
        "dashscope": model == DEFAULT_MODELS["dashscope"],
        "openai": base_url.rstrip("/").removesuffix("/v1") == DEFAULT_BASE_URLS["openai"],
        "espeak": True,
    }[provider]
    if not complete:
        return voice
    raise ConfigError(
        f"--voice {voice}: {provider} has no such voice; choose one of {', '.join(names)} "
        f"(see `narrator voices --provider {provider}`)"
    )
