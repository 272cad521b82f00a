"""The gallery folders a person chose, kept as JSON in the app's data directory (no Kivy)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from formats.atomic import atomic_write_text

logger = logging.getLogger(__name__)

SETTINGS_NAME = "app_settings.json"


class GallerySettings:
    """``folders`` (absolute paths, in the order chosen) saved to ``data_dir/app_settings.json``.

    ``folders`` is None until a person (or the command line) chose some: the app then uses its
    platform's default gallery. An unreadable settings file is logged and treated as absent.
    """

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / SETTINGS_NAME
        self.folders: list[str] | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            logger.warning("ignoring unreadable settings %s: %s", self.path, e)
            return
        folders = data.get("galleries") if isinstance(data, dict) else None
        if isinstance(folders, list) and all(isinstance(f, str) for f in folders):
            self.folders = folders

    def save(self, folders: list[str | Path]) -> list[str]:
        """Remember ``folders`` (made absolute, duplicates dropped); returns what was saved."""
        unique: list[str] = []
        for f in folders:
            path = os.path.abspath(os.path.expanduser(str(f)))
            if path not in unique:
                unique.append(path)
        self.folders = unique
        atomic_write_text(self.path, json.dumps({"galleries": unique}, indent=2))
        return unique
