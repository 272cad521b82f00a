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

from jvm_parts import REPO, JvmParts, build

DRIVER = Path(__file__).resolve().parent / "phone_run.py"
EMBED_DIM = 16


@pytest.fixture(scope="session")
def jvm_parts() -> JvmParts:
    return build()


def buildozer_copy(dest: Path) -> Path:
    """Buildozer's own copy of the app's sources (its include/exclude rules applied to buildozer.spec)."""
    from buildozer import Buildozer

    cwd = os.getcwd()
    os.chdir(REPO)  # Buildozer resolves source.dir against the working directory
    try:
        bz = Buildozer(filename=str(REPO / "buildozer.spec"), target=None)
        bz.config.set("buildozer", "build_dir", str(dest))
        bz.log_level = 0
        bz.targetname = "android"
        os.makedirs(bz.app_dir, exist_ok=True)
        bz._copy_application_sources()
        return Path(bz.app_dir)
    finally:
        os.chdir(cwd)


def standin_bundle(root: Path) -> Path:
    """An ExecuTorch bundle as export.bundle writes one, whose programs the stand-in Module can run."""
    from export.bundle import write_manifest, write_tokenizer_files

    root.mkdir(parents=True)
    for name in ("image", "text"):
        (root / f"student_{name}_xnnpack_fp32.pte").write_text(f"STANDIN {EMBED_DIM}\n")
    ctx = 32
    tokenizer = write_tokenizer_files({"kind": "open_clip", "model": "synthclip-micro", "context_length": ctx}, root)
    pre = {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    write_manifest(root, {
        "backend": "executorch-xnnpack", "precision": "fp32", "embedding_dim": EMBED_DIM,
        "image": {"program": "student_image_xnnpack_fp32.pte", "input": {"name": "image", "shape": [1, 3, 32, 32]},
                  "output": {"name": "embedding"}, **pre},
        "text": {"program": "student_text_xnnpack_fp32.pte", "input": {"name": "tokens", "shape": [1, "L"]},
                 "output": {"name": "embedding"}, "context_length": ctx,
                 "lengths": {"kind": "range", "min": 2, "max": ctx}},
        "tokenizer": tokenizer, "source": {"weights_sha256": "cd" * 32},
    })
    return root


@pytest.fixture(scope="session")
def shipped_app(tmp_path_factory) -> Path:
    """The APK's app folder: Buildozer's copy, plus the model bundle where the app looks for it."""
    app_dir = buildozer_copy(tmp_path_factory.mktemp("buildozer"))
    bundle = standin_bundle(tmp_path_factory.mktemp("b") / "offline-executorch")
    shutil.copytree(bundle, app_dir / "bundles" / "offline-executorch")
    return app_dir


# what python-for-android builds into the APK for buildozer.spec's requirements, as installed here
PHONE_PACKAGES = ("numpy", "numpy.libs", "PIL", "pillow.libs", "jnius", "jnius_config", "ftfy", "wcwidth")


@pytest.fixture(scope="session")
def phone_site(tmp_path_factory) -> Path:
    """A site-packages holding only the phone's libraries (links to this machine's installs)."""
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("phone-site")
    for name in PHONE_PACKAGES:
        if (site / name).exists():
            (out / name).symlink_to(site / name)
    return out


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
