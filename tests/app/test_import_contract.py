"""The phone boundary as a contract: app.engine imports no torch, training code, export tools, Kivy or
app.desktop (import-linter, .importlinter at the repository root). The import graph counts imports
inside functions too, so a lazy `import torch` in an engine module breaks it."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]


def test_app_engine_keeps_its_import_contract(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    code = lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out[-4000:]
    assert "1 kept, 0 broken" in out


def test_the_contract_would_catch_a_lazy_torch_import(monkeypatch, capsys, tmp_path):
    """The contract is live: on a copy of the code, one engine module importing torch inside a function breaks it."""
    for name in ("app", "compression", "export"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app" / "engine" / "leaky.py").write_text("def f():\n    import torch\n    return torch\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in [m for m in sys.modules if m.split(".")[0] in ("app", "compression", "export")]:
        monkeypatch.delitem(sys.modules, mod)
    code = lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 1
    assert "app.engine.leaky -> torch" in out
