"""Errors an export reports to its user: each names what failed and where."""

from __future__ import annotations

from formats.errors import UserError


class ExportError(UserError, RuntimeError):
    """A model that cannot be exported or lowered to a backend; names the encoder, backend and op."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (library errors can be pages long)."""
    text = str(error).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(error).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
