"""Bundles of the tiny run, exported once per session and shared (each export takes seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PARITY_IMAGES = 16  # test images (+ their captions) each export's parity check runs on
CALIBRATION_SAMPLES = 32


@pytest.fixture(scope="session")
def tiny_paths(tiny_run) -> tuple[Path, Path]:
    """(run directory, data cache) of the shared tiny pipeline run."""
    _, root, _ = tiny_run
    return root / "runs" / "tiny", root / "cache"


@pytest.fixture(scope="session")
def et_fp32_bundle(tiny_paths, tmp_path_factory) -> Path:
    from export.executorch import export_executorch

    run_dir, cache = tiny_paths
    out = tmp_path_factory.mktemp("bundles") / "tiny-executorch"
    return export_executorch(run_dir, out, "fp32", cache_dir=cache, parity_images=PARITY_IMAGES)


@pytest.fixture(scope="session")
def et_int8_bundle(tiny_paths, tmp_path_factory) -> Path:
    from export.executorch import export_executorch

    run_dir, cache = tiny_paths
    out = tmp_path_factory.mktemp("bundles") / "tiny-executorch-int8"
    return export_executorch(
        run_dir,
        out,
        "int8",
        cache_dir=cache,
        calibration_samples=CALIBRATION_SAMPLES,
        parity_images=PARITY_IMAGES,
    )


@pytest.fixture(scope="session")
def coreml_bundle(tiny_paths, tmp_path_factory) -> Path:
    from export.coreml import export_coreml

    run_dir, cache = tiny_paths
    out = tmp_path_factory.mktemp("bundles") / "tiny-coreml"
    return export_coreml(run_dir, out, "fp16", cache_dir=cache, parity_images=PARITY_IMAGES)


@pytest.fixture
def bundle_copy(tmp_path):
    """copy(bundle) -> a private copy of a session bundle that a test may modify."""

    def copy(bundle: Path) -> Path:
        dest = tmp_path / bundle.name
        shutil.copytree(bundle, dest)
        return dest

    return copy


@pytest.fixture(scope="session")
def onnx_bundles(tiny_paths, tmp_path_factory) -> dict[str, Path]:
    """precision -> the tiny run's ONNX bundle (fp32 and int8), each verified by its parity check."""
    from export.onnx import export_onnx

    run_dir, cache = tiny_paths
    root = tmp_path_factory.mktemp("bundles")
    return {p: export_onnx(run_dir, root / f"tiny-onnx-{p}", p, cache_dir=cache, parity_images=PARITY_IMAGES)
            for p in ("fp32", "int8")}
