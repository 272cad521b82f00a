"""The Android bridge on a real JVM: the app's entry path, from the files Buildozer ships, through real
pyjnius, against stand-ins of ExecuTorch's Java classes, with a JVMTI agent that makes any off-thread
lookup of an app class fail as it does on Android (python-for-android #2242) and records it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from phone_parts import buildozer_copy, standin_bundle

DRIVER = Path(__file__).resolve().parent / "phone_run.py"


@pytest.fixture(scope="session")
def shipped_app(tmp_path_factory) -> Path:
    """The APK's app folder: Buildozer's copy, plus the model bundle where the app looks for it."""
    app_dir = buildozer_copy(tmp_path_factory.mktemp("buildozer"))
    bundle = standin_bundle(tmp_path_factory.mktemp("b") / "offline-executorch")
    shutil.copytree(bundle, app_dir / "bundles" / "offline-executorch")
    return app_dir


def test_buildozer_ships_the_phone_code_and_nothing_desktop_only(shipped_app):
    shipped = {p.relative_to(shipped_app).as_posix() for p in shipped_app.rglob("*.py")}
    assert {"main.py", "app/engine/engine.py", "app/engine/runtimes/android.py", "export/bundle.py"} <= shipped
    assert not any(p.startswith(("app/desktop/", "compression/", "tests/", "bench/")) for p in shipped)


def _gallery(folder: Path, n: int = 12) -> Path:
    folder.mkdir()
    for i in range(n):
        colour = ((i * 53) % 256, (i * 97) % 256, (i * 31) % 256)
        Image.new("RGB", (40 + i, 30), colour).save(folder / f"photo{i:02d}.png")
    return folder


def test_the_phone_entry_path_indexes_and_searches_through_the_bridge(shipped_app, phone_site, jvm_parts, tmp_path):
    """Python without its site-packages (-S -I), importing only the shipped files and the phone's libraries."""
    gallery = _gallery(tmp_path / "DCIM")
    log = tmp_path / "findclass.log"
    out = subprocess.run(
        [sys.executable, "-S", "-I", str(DRIVER), str(phone_site), str(shipped_app), str(shipped_app / "bundles" / "offline-executorch"),
         str(gallery), str(tmp_path / "data"), str(jvm_parts.classpath), str(jvm_parts.agent), str(log)],
        cwd=shipped_app, capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANDROID_ARGUMENT")},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    off_thread = log.read_text().splitlines() if log.exists() else []
    app_lookups = [line for line in off_thread if not line.split()[1].lstrip("[L").startswith(("java/", "javax/", "jdk/", "sun/"))]
    assert app_lookups == [], f"app classes looked up off the main thread (fails on Android): {app_lookups}"
    assert result["platform"] == "android" and "failed" not in result, result
    assert result["opened"].startswith("android-executorch encoders")
    assert result["index_error"] is None and result["indexed"] == 12
    assert len(result["search"]) == 3 and all(Path(p).parent == gallery for p in result["search"])
    assert len(result["similar"]) == 2 and str(gallery / "photo00.png") not in result["similar"]
    assert result["imported_from_elsewhere"] == [] and result["blocked_loaded"] == []


NEGATIVE = """
import sys, threading, jnius_config
jnius_config.add_options(f"-agentpath:{sys.argv[2]}={sys.argv[3]}")
jnius_config.set_classpath(sys.argv[1])
from jnius import autoclass
errors = []
def worker():
    try:
        autoclass("org.pytorch.executorch.EValue")
    except Exception as e:
        errors.append(str(e))
t = threading.Thread(target=worker); t.start(); t.join()
main_thread_ok = autoclass("org.pytorch.executorch.EValue") is not None
print(main_thread_ok, bool(errors) and "NoClassDefFoundError" in errors[0])
"""


def test_the_thread_check_catches_an_off_thread_lookup(jvm_parts, tmp_path):
    """The check is live: a lookup from a Python thread fails (as on Android) and is logged; the main thread's works."""
    log = tmp_path / "findclass.log"
    out = subprocess.run([sys.executable, "-c", NEGATIVE, str(jvm_parts.classpath), str(jvm_parts.agent), str(log)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
    assert "org/pytorch/executorch/EValue" in log.read_text()
