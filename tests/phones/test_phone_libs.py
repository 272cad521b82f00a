"""The engine on the phone builds' own library versions (phone_libs.py): its store, scanner and engine
tests run there, and decoding gives the same pixels as on the desktop's libraries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from phone_libs import NEAREST, RECIPES, ensure_env
from phone_parts import check_entry_path, check_mediastore_entry_path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENGINE_TESTS = ["tests/engine/test_store.py", "tests/engine/test_scanner.py", "tests/engine/test_engine.py",
                "tests/engine/test_photo_sources.py", "tests/phones/test_mediastore_source.py"]
# Tests that cannot run there, and why. The phones' Pillow has no WebP: python-for-android builds it
# with libwebp only when the requirements name libwebp (buildozer.spec does not), kivy-ios has no
# libwebp recipe. The app is right (the scanner asks Pillow what it can decode); this test writes a .webp.
DESELECTED = ["tests/engine/test_scanner.py::test_walk_finds_photos_by_extension_and_skips_the_rest"]

pytestmark = pytest.mark.slow  # the first run builds Pillow (and numpy 1.22) from source: minutes; cached after


@pytest.fixture(scope="module", params=sorted(RECIPES))
def phone_python(request) -> tuple[str, Path]:
    return request.param, ensure_env(request.param)


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": f"{REPO}{os.pathsep}{HERE}"}


def test_the_environment_has_the_recipe_versions(phone_python):
    platform, python = phone_python
    out = subprocess.run([str(python), "-c", "import PIL, numpy, json; print(json.dumps([PIL.__version__, numpy.__version__]))"],
                         capture_output=True, text=True, check=True)
    pillow, numpy_version = json.loads(out.stdout)
    expected = {name: NEAREST[platform].get(name, (v, ""))[0] for name, v in RECIPES[platform].items()}
    assert (pillow, numpy_version) == (expected["Pillow"], expected["numpy"])


def test_the_engine_tests_pass_on_the_phone_libraries(phone_python):
    platform, python = phone_python
    command = [str(python), "-m", "pytest", "--noconftest", "-p", "phone_libs_plugin", "-p", "no:cacheprovider", "-q",
               *ENGINE_TESTS, *(f"--deselect={t}" for t in DESELECTED)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False, env=_env())
    assert out.returncode == 0, f"{platform}:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
    assert " passed" in out.stdout.strip().splitlines()[-1]


def test_decoding_matches_the_desktop_libraries(phone_python, tmp_path):
    _, python = phone_python
    results = []
    for interpreter, flags in ((sys.executable, ["--write"]), (str(python), [])):  # the same files, decoded twice
        out = subprocess.run([interpreter, str(HERE / "decode_probe.py"), str(REPO), str(tmp_path / "photos"), *flags],
                             capture_output=True, text=True, timeout=300, check=False, env=_env())
        assert out.returncode == 0, out.stderr[-3000:]
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    desktop, phone = results
    assert phone["pillow"] != desktop["pillow"]  # really two different libraries
    assert phone["split"] == desktop["split"] and phone["thumbnail"] == desktop["thumbnail"]
    for photo, want in desktop.items():
        if not isinstance(want, dict):
            continue
        got = phone[photo]
        assert got.keys() == want.keys() and got.get("error") == want.get("error") and got.get("shape") == want.get("shape"), photo
        if "values" in want:  # JPEG decoders may round an 8-bit value differently: 2 levels of 255 at most
            np.testing.assert_allclose(got["values"], want["values"], atol=2 / 255 / 0.25 + 1e-4, err_msg=photo)


def test_the_android_entry_path_runs_on_the_phone_libraries(shipped_app, jvm_parts, tmp_path):
    """The Android entry path of test_android_bridge.py with python-for-android's pyjnius, Pillow and numpy."""
    python = ensure_env("android")
    site = subprocess.run([str(python), "-c", "import numpy, pathlib; print(pathlib.Path(numpy.__file__).parents[1])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    check_entry_path(str(python), Path(site), shipped_app, jvm_parts, tmp_path)


def test_the_android_mediastore_gallery_runs_on_the_phone_libraries(shipped_app, jvm_parts, tmp_path):
    """The MediaStore gallery path (content URIs, byte[] images) with pyjnius 1.6.1 and Pillow 8.4.0."""
    python = ensure_env("android")
    site = subprocess.run([str(python), "-c", "import numpy, pathlib; print(pathlib.Path(numpy.__file__).parents[1])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    check_mediastore_entry_path(str(python), Path(site), shipped_app, jvm_parts, tmp_path, selected="1,4,9,12")
