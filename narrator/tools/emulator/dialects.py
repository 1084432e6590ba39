"""Every API the emulator plays, by name: adding one is a module and a line here."""

from __future__ import annotations

from . import aimlapi, dashscope, openai
from .dialect import Dialect

__all__ = ["DIALECTS"]

#: The dialects by :attr:`EmulatorConfig.api`; the first is the default.
DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect for dialect in (aimlapi.DIALECT, dashscope.DIALECT, openai.DIALECT)
}
