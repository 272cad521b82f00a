"""The one base class of errors a person can act on (a bad path, a broken file, a wrong flag).

Entry points (``formats.cli.cli_main``) print such an error as one line and exit 2; anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what is wrong and names the thing; no traceback needed."""


class FormatError(UserError, ValueError):
    """A file of one of the formats here that is missing, unreadable or malformed; names the file."""
