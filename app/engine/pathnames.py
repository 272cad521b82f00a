"""File names that are not valid text: stored losslessly in SQLite, shown safely on a terminal.

Python hands a name that is not valid UTF-8 (a Latin-1 ``caf\\xe9.jpg`` from a Windows zip or an
SD card) to the engine as a ``str`` holding lone surrogates (PEP 383). SQLite cannot store those as
TEXT, so such a name is stored as the BLOB of its bytes and read back into the same ``str``; every
valid name stays TEXT, so indexes written before keep working and the mapping is one to one.
"""
from __future__ import annotations

import os
import unicodedata


def to_db(path: str) -> str | bytes:
    """The SQLite value of a path: the text itself when it is valid UTF-8, else its file-system bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def from_db(value: str | bytes) -> str:
    """Inverse of :func:`to_db`: the ``str`` the operating system gives for that name."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def shown(path: str) -> str:
    """A path as one printable line: bytes that are not text as ``\\xNN``, control and other
    invisible characters (ANSI escapes, newlines, bidi overrides) as ``\\uXXXX``, backslashes doubled.

    Lossless: two different names are never shown the same.
    """
    out = []
    for ch in path:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
