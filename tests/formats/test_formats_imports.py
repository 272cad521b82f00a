"""formats/ is what every part imports to read the others' files, phones included: it may import only the
standard library, numpy and itself (an allow-list; .importlinter's forbidden contract names the heavy ones)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "formats"}


def test_formats_imports_only_the_standard_library_and_numpy():
    found = {}
    for path in sorted((REPO / "formats").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in ALLOWED:
                    found[f"{path.relative_to(REPO)}:{node.lineno}"] = name
    assert not found, found


def test_importing_all_of_formats_loads_no_heavy_library():
    code = ("import sys, pkgutil, importlib, formats\n"
            "for m in pkgutil.iter_modules(formats.__path__): importlib.import_module('formats.' + m.name)\n"
            "heavy = {'torch', 'PIL', 'open_clip', 'kivy', 'app', 'compression', 'export'} & set(sys.modules)\n"
            "print(sorted(heavy)); sys.exit(1 if heavy else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
