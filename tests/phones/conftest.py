"""Fixtures of the phone tests (helpers in phone_parts.py)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phone_parts import JvmParts, build, buildozer_copy, site_of, standin_bundle

# what python-for-android builds into the APK for buildozer.spec's requirements, as installed here
PHONE_PACKAGES = ("numpy", "numpy.libs", "PIL", "pillow.libs", "jnius", "jnius_config", "ftfy", "wcwidth")
IOS_PACKAGES = ("numpy", "numpy.libs", "PIL", "pillow.libs", "ftfy", "wcwidth")  # kivy-ios recipes; pyobjus: see test


@pytest.fixture(scope="session")
def phone_site(tmp_path_factory) -> Path:
    """A site-packages holding only the Android app's libraries (links to this machine's installs)."""
    return site_of(PHONE_PACKAGES, tmp_path_factory.mktemp("phone-site"))


@pytest.fixture(scope="session")
def ios_site(tmp_path_factory) -> Path:
    """A site-packages holding only the iOS app's libraries (links to this machine's installs)."""
    return site_of(IOS_PACKAGES, tmp_path_factory.mktemp("ios-site"))


@pytest.fixture(scope="session")
def jvm_parts() -> JvmParts:
    return build()


@pytest.fixture(scope="session")
def shipped_app(tmp_path_factory) -> Path:
    """The APK's app folder: Buildozer's copy, plus the model bundle where the app looks for it."""
    app_dir = buildozer_copy(tmp_path_factory.mktemp("buildozer"))
    bundle = standin_bundle(tmp_path_factory.mktemp("b") / "offline-executorch")
    shutil.copytree(bundle, app_dir / "bundles" / "offline-executorch")
    return app_dir
