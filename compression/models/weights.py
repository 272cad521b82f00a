"""Pretrained weights that cannot be had: one error type whose message says how to supply them offline."""
from __future__ import annotations

from pathlib import Path

from formats.errors import UserError


class WeightsUnavailableError(UserError, ValueError):
    """Pretrained weights that could not be fetched or read; the message names them and the offline fix."""


def weights_failure(what: str, source: str, error: BaseException, how: str) -> WeightsUnavailableError:
    """One line: ``what`` could not be fetched (or read, for a local file) from ``source``, and ``how`` to pass a file."""
    first = (str(error).strip().splitlines() or [""])[0][:200]
    verb = "read" if Path(source).is_file() else "fetched"
    return WeightsUnavailableError(
        f"{what} could not be {verb} from {source} ({type(error).__name__}: {first}); "
        f"without network, download them on another machine and pass {how}"
    )
