"""Stage the files the iOS app ships, for kivy-ios: `python ios/stage.py DEST [--coreml-bundle DIR]`.

kivy-ios's Xcode project copies the whole folder given to `toolchain create` into the .app (its
first build phase is `rsync -av --delete <folder>/ YourApp`, then every .py is byte-compiled and
deleted). Given the repository itself, the phone would get .venv, runs/, the training code and the
tests. This stages only what the phones run: the files Buildozer's own copy routine takes for
buildozer.spec (one definition of the phone's code for both platforms), minus the Android bundle,
plus the Core ML bundle (bundles/offline-coreml, written by `python -m export.coreml`).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
ANDROID_ONLY = ("bundles/offline-executorch",)  # the code stays: the platform checks import it everywhere


def buildozer_copy(dest: Path, repo: Path = REPO) -> Path:
    """Buildozer's own copy of the app's sources (its include/exclude rules on buildozer.spec) under ``dest``."""
    from buildozer import Buildozer  # pinned in requirements/constraints.txt (the dev extra)

    cwd = os.getcwd()
    os.chdir(repo)  # Buildozer resolves source.dir against the working directory
    try:
        bz = Buildozer(filename=str(repo / "buildozer.spec"), target=None)
        bz.config.set("buildozer", "build_dir", str(dest))
        bz.log_level = 0
        bz.targetname = "android"
        os.makedirs(bz.app_dir, exist_ok=True)
        bz._copy_application_sources()
        return Path(bz.app_dir)
    finally:
        os.chdir(cwd)


def stage(dest: Path, coreml_bundle: Path, repo: Path = REPO) -> Path:
    """Fill the empty or missing folder ``dest`` with the iOS app's files; returns ``dest``."""
    if not (coreml_bundle / "manifest.json").is_file():
        raise SystemExit(f"ios/stage.py: error: no Core ML bundle at {coreml_bundle}: run `python -m export.coreml`")
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"ios/stage.py: error: {dest} is not empty")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(buildozer_copy(Path(tmp), repo), dest, dirs_exist_ok=True)
    for rel in ANDROID_ONLY:
        target = dest / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    shutil.copytree(coreml_bundle, dest / "bundles" / "offline-coreml")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python ios/stage.py", description=__doc__.splitlines()[0])
    p.add_argument("dest", type=Path, help="an empty folder; then `toolchain create PocketClip DEST`")
    p.add_argument("--coreml-bundle", type=Path, default=REPO / "bundles" / "offline-coreml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    out = stage(args.dest, args.coreml_bundle)
    print(f"staged {sum(1 for p in out.rglob('*') if p.is_file())} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
