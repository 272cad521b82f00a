"""Fixtures of the hostile suite."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """An empty working directory, HOME and TMPDIR for the code under test: they must stay empty."""
    box = tmp_path / "sandbox"
    for sub in ("cwd", "home", "tmp"):
        (box / sub).mkdir(parents=True)
    monkeypatch.chdir(box / "cwd")
    monkeypatch.setenv("HOME", str(box / "home"))
    monkeypatch.setenv("TMPDIR", str(box / "tmp"))
    return box
