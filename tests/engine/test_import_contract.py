"""The phone boundary as a contract: app.engine imports no torch, training code, export tools, Kivy or
app.desktop (import-linter, .importlinter at the repository root). The import graph counts imports
inside functions too, so a lazy `import torch` in an engine module breaks it.

import-linter runs in a child process: its CLI reconfigures logging with ``dictConfig``, which
disables every logger that exists in the calling process (the test suite's own)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))"


def _lint(code_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    return subprocess.run([sys.executable, "-c", LINT, str(REPO / ".importlinter")], check=False,
                          cwd=code_root, env=env,
                          capture_output=True, text=True, timeout=300)


def _lint_with_module(tmp_path, relative: str, source: str) -> subprocess.CompletedProcess:
    """The contracts checked on a copy of the code with one extra module at ``relative``."""
    for name in ("formats", "app", "compression", "export"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / relative).write_text(source)
    return _lint(tmp_path)


def test_app_engine_keeps_its_import_contract():
    result = _lint(REPO)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_contract_would_catch_a_lazy_torch_import(tmp_path):
    """The contract is live: on a copy of the code, one engine module importing torch inside a function breaks it."""
    result = _lint_with_module(tmp_path, "app/engine/leaky.py", "def f():\n    import torch\n    return torch\n")
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    assert "app.engine.leaky -> torch" in result.stdout


def test_the_contract_would_catch_formats_importing_a_part(tmp_path):
    """formats/ is below every part: on a copy of the code, a formats module importing the engine breaks it."""
    result = _lint_with_module(tmp_path, "formats/leaky.py", "def f():\n    from app.engine import decode\n    return decode\n")
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    assert "formats.leaky -> app.engine.decode" in result.stdout
