"""Command-line argument types and help: one-line errors that name the option and what
it takes, and help that shows every default."""

from __future__ import annotations

import argparse
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

__all__ = [
    "HelpFormatter", "Parser", "age", "as_int", "non_negative_float", "non_negative_int",
    "positive_float", "positive_int", "share", "size",
]  # fmt: skip


def _whole(text: str, *, minimum: int | None = None) -> int:
    """``text`` as an int of at least ``minimum``, else an error saying what is wanted."""
    form = "a whole number" if minimum is None else f"a whole number of at least {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}") from None
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}")
    return value


def _number(
    text: str, *, form: str = "a number", ok: Callable[[float], bool] = math.isfinite
) -> float:
    """``text`` as a float that passes ``ok``, else an error saying what is wanted."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}")
    return value


def as_int(text: str) -> int:
    """Any whole number."""
    return _whole(text)


def non_negative_int(text: str) -> int:
    """A whole number, 0 or more."""
    return _whole(text, minimum=0)


def positive_int(text: str) -> int:
    """A whole number, 1 or more."""
    return _whole(text, minimum=1)


def non_negative_float(text: str) -> float:
    """A finite number, 0 or more."""
    return _number(text, form="a number of at least 0", ok=lambda v: 0 <= v < math.inf)


def positive_float(text: str) -> float:
    """A finite number above 0."""
    return _number(text, form="a number greater than 0", ok=lambda v: 0 < v < math.inf)


def share(text: str) -> float:
    """A share from 0 to 1."""
    return _number(text, form="a share between 0 and 1", ok=lambda v: 0 <= v <= 1)


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6}
_SIZE_UNITS |= {"g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _scaled(text: str, units: Mapping[str, float], form: str) -> float:
    stripped = text.strip().lower().replace(",", "").replace("_", "")
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = stripped[len(number) :].strip()
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected {form}, not {text!r}")
    return value


def size(text: str) -> int:
    """A size in bytes: ``20GB``, ``500M``, ``0`` (decimal units, as disks are sold)."""
    return int(_scaled(text, _SIZE_UNITS, "a size such as 20GB or 500MB"))


def age(text: str) -> float:
    """An age in seconds: ``30d``, ``12h``, ``2w``, ``90m``, ``45s``."""
    return _scaled(text, _AGE_UNITS, "an age such as 30d, 12h or 2w")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        shown = " ".join(default) if isinstance(default, list) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"  # argparse %-formats help


class Parser(argparse.ArgumentParser):
    """One line for a usage error, naming the option and what it takes, with a guess at
    what was meant for a mistyped option or command, and the help of the command used.
    No abbreviated options: ``--ap KEY`` would be the key under a name no scrubber knows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False  # subcommands' parsers are made by this class too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse's own message reads "argument --rpm: expected ..."; the usage block
        # it would print first buries that line, and `--help` shows it on request.
        guess = self._did_you_mean(message)
        self.exit(2, f"{self.prog}: {message}{guess} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        found, extras = super().parse_known_args(args, namespace)
        unknown = [word for word in extras if word.startswith("-")]
        if unknown and self._subcommands() is None:
            # Said by the command that was typed (`narrator narrate: unrecognized
            # arguments: --voise; did you mean --voice?`), pointing at its own --help.
            # Only the option's name: `--api-kye=sk-...` must not print the key.
            names = (word.partition("=")[0] for word in unknown)
            self.error(f"unrecognized arguments: {' '.join(names)}")
        return found, extras

    def _subcommands(self) -> dict[str, argparse.ArgumentParser] | None:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return None

    def _did_you_mean(self, message: str) -> str:
        """'; did you mean --voice?' for the first unknown option or command in
        ``message``, when a known one is close."""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice is not None:
            known = re.findall(r"'([^']*)'", choice.group(2))
            word = choice.group(1)
        else:
            unknown = re.search(r"unrecognized arguments: (\S+)", message)
            if unknown is None:
                return ""
            word = unknown.group(1).partition("=")[0]
            known = [o for action in self._actions for o in action.option_strings]
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""
