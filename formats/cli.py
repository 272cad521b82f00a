"""The one wrapper every command-line entry point runs its ``main`` in.

A user error (:class:`formats.errors.UserError`) is one line on stderr and exit status 2; Ctrl-C is
exit status 130 with what to do next; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from formats.errors import UserError

Main = Callable[[list[str] | None], int]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what to do next (``str(e)``) when the entry point knows more than the wrapper."""


def cli_main(prog: str, interrupted: str = "interrupted",
             user_errors: tuple[type[BaseException], ...] = (UserError,),
             show: Callable[[str], str] = str) -> Callable[[Main], Main]:
    """Decorate ``main(argv=None) -> int``: user errors -> ``"{prog}: error: {message}"``, exit 2;
    Ctrl-C -> ``"{prog}: {interrupted}"``, exit 130. ``show`` renders a message (e.g. escapes a path)."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except user_errors as e:
                print(f"{prog}: error: {show(str(e))}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as e:
                print(f"\n{prog}: {str(e) if isinstance(e, Interrupted) and str(e) else interrupted}", file=sys.stderr)
                return 130

        return run

    return wrap
