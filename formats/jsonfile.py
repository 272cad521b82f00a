"""Reading the JSON files of the formats here, with errors that name the file and what it is."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from formats.errors import FormatError


def read_json_object(path: str | Path, what: str, error: type[Exception] = FormatError) -> dict[str, Any]:
    """The JSON object in ``path`` (``what`` names it in messages: "bundle manifest", "student.json").

    Raises ``error`` (a FormatError unless told otherwise) when the file is missing, unreadable, not
    JSON, or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} is not valid JSON: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} {path}: {e}") from e
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a JSON object, got {type(data).__name__}")
    return data
