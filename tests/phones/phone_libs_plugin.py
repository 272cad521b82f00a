"""pytest plugin for running the engine's own tests in the phone-libraries environment (no torch there).

The repository's conftests import torch (training fixtures), so that run uses --noconftest and this
plugin, which takes the engine tests' fixtures from tests/engine/conftest.py (numpy/Pillow only) and
leaves out its torch-only ones.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "engine_test_fixtures", Path(__file__).resolve().parents[1] / "engine" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

fake_encoders = _fixtures.fake_encoders
fake_encoders_class = _fixtures.fake_encoders_class
make_gallery = _fixtures.make_gallery
image_writer = _fixtures.image_writer
gallery_state = _fixtures.gallery_state
png_bomb = _fixtures.png_bomb
