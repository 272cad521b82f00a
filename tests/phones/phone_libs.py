"""The phone builds' own library versions, in a virtual environment built once and cached.

Versions are those of the recipes the builds use (read from their sources): python-for-android
v2024.01.21 (buildozer.spec's p4a.branch) builds CPython 3.11.5 with Pillow 8.4.0, numpy 1.22.3 and
pyjnius 1.6.1; kivy-ios 2025.5.17 builds CPython 3.11.6 with Pillow 8.2.0 and numpy 1.24.4, and has
no regex recipe. Here they run on this machine's CPython 3.11 (Linux x86-64): the same Python code
and C sources, built for another CPU and OS. Pillow 8.x and numpy 1.22.3 have no cp311 wheel, so pip
builds them from their source releases (Debian's zlib1g-dev and libjpeg-dev for Pillow; numpy 1.22.3
took about 24 minutes on this shared 2-core machine, once: pip caches the wheel it built). Where a
recipe version cannot be built here, NEAREST says what is used instead and why.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

RECIPES = {
    "android": {"Pillow": "8.4.0", "numpy": "1.22.3", "pyjnius": "1.6.1"},
    "ios": {"Pillow": "8.2.0", "numpy": "1.24.4"},
}
NEAREST: dict[str, dict[str, tuple[str, str]]] = {"android": {}, "ios": {}}  # none needed so far

# what the engine's tests need besides (pure Python, versions as pinned for the desktop)
TEST_TOOLS = ("ftfy", "wcwidth", "pytest", "pluggy", "iniconfig", "packaging")


def _pins() -> dict[str, str]:
    text = (Path(__file__).resolve().parents[2] / "requirements" / "constraints.txt").read_text()
    return {k.lower(): v for k, v in (line.split("==") for line in text.splitlines() if "==" in line)}


def requirements(platform: str) -> list[str]:
    pins = _pins()
    libs = {name: NEAREST[platform].get(name, (version, ""))[0] for name, version in RECIPES[platform].items()}
    return [f"{n}=={v}" for n, v in libs.items()] + [f"{t}=={pins[t]}" for t in TEST_TOOLS]


def ensure_env(platform: str, cache_root: Path | None = None) -> Path:
    """The environment's python, building the environment first if this set of versions has none yet."""
    reqs = requirements(platform)
    key = hashlib.sha256(json.dumps([sys.version_info[:2], reqs]).encode()).hexdigest()[:12]
    root = (cache_root or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")) / "pocketclip" / \
        "phone-libs" / f"{platform}-{key}"
    python = root / "bin" / "python"
    if (root / ".complete").is_file():
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(root)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(python), "-m", "pip", "install", "--no-input", "-q", *reqs],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"cannot build the {platform} phone-libraries environment {reqs}:\n{out.stderr[-3000:]}")
    (root / ".complete").write_text(json.dumps(reqs) + "\n")
    return python
