"""The ``narrator`` command: a thin shell over the library.

It is the only place that reads the environment, prints, and turns errors into exit
codes: 0 all done, 1 some document failed (or the account ran out of credits),
2 usage or configuration error, 130/143 interrupted by SIGINT/SIGTERM. An error's code
is its class's (``NarratorError.exit_code``, see :mod:`narrator.errors`).

Inside: :mod:`.parser` (the grammar, over :mod:`.options`, :mod:`.argtypes` and the
settings file in :mod:`.config`), :mod:`.build` (arguments to settings, works and
estimates), :mod:`.commands` (one function per command) and :mod:`.render` (the tables,
the bar, the summary). Output planning and the run report are the library's
(:mod:`narrator.run.batch`, :mod:`narrator.report.writer`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from ..errors import ConfigError, NarratorError
from ..util.sanitize import shown
from .flags import as_flags, flag_of
from .parser import build_parser, parse
from .render import ShownFormatter

__all__ = ["build_parser", "main"]


def _as_flags(exc: NarratorError) -> str:
    """The library's message, naming the flags that set what it names."""
    text = str(exc)
    setting = getattr(exc, "setting", None)
    if setting is not None:
        text = text.replace(setting, flag_of(setting), 1)
    return as_flags(text)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
        # The command as typed, for the report's "run it again to resume".
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"narrator: {shown(_as_flags(exc))}", file=sys.stderr)
        return exc.exit_code
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ShownFormatter("narrator: %(message)s"))
    logging.basicConfig(
        handlers=[handler], level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)  # not "Found credentials in..."
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
        return code
    except NarratorError as exc:
        print(f"narrator: {shown(_as_flags(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("narrator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `narrator voices | head -3`: the reader has all it wanted. Point stdout at
        # /dev/null so the flush at exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
