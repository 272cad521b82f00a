"""Where the engine keeps its index on a desktop, shared by the CLI (``python -m app.engine``) and the app.

A module of its own so that the app's platform layer can ask without importing the CLI entry point
(which pulls in argparse set-up and the desktop model loader).
"""
from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """$POCKETCLIP_DATA_DIR, else $XDG_DATA_HOME/pocketclip, else ~/.local/share/pocketclip."""
    if os.environ.get("POCKETCLIP_DATA_DIR"):
        return Path(os.environ["POCKETCLIP_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pocketclip"
