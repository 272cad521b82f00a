"""formats.cli.cli_main: a user error is one line and exit 2, Ctrl-C exit 130, a bug keeps its traceback."""
from __future__ import annotations

import pytest

from formats.cli import Interrupted, cli_main
from formats.errors import FormatError, UserError


def _main_raising(error: BaseException):
    @cli_main("tool", interrupted="interrupted; run again")
    def main(argv: list[str] | None = None) -> int:
        raise error

    return main


def test_a_user_error_is_one_line_and_exit_2(capsys):
    assert _main_raising(FormatError("manifest.json: missing key 'files'"))([]) == 2
    assert capsys.readouterr().err == "tool: error: manifest.json: missing key 'files'\n"


def test_ctrl_c_is_exit_130_with_what_to_do(capsys):
    assert _main_raising(KeyboardInterrupt())([]) == 130
    assert capsys.readouterr().err.strip() == "tool: interrupted; run again"
    assert _main_raising(Interrupted("interrupted; resume from runs/x"))([]) == 130
    assert capsys.readouterr().err.strip() == "tool: interrupted; resume from runs/x"


def test_a_bug_keeps_its_traceback():
    """A plain ValueError (a numpy shape mismatch, say) is not a user error: it escapes with its traceback."""
    with pytest.raises(ValueError, match="could not be broadcast"):
        _main_raising(ValueError("operands could not be broadcast together with shapes (3,) (4,)"))([])


def test_the_return_value_passes_through():
    @cli_main("tool")
    def main(argv: list[str] | None = None) -> int:
        return len(argv or [])

    assert main(["a", "b"]) == 2 and issubclass(FormatError, UserError) and issubclass(FormatError, ValueError)
