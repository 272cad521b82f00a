"""resolve_model: one answer to "what is at --model", the same for the engine, the settings and the benchmarks."""
from __future__ import annotations

import json

import pytest

from formats.model_dir import BUNDLE, BUNDLES, RUN, ModelNotFoundError, resolve_model


def _bundle(root, name, backend):
    (root / name).mkdir(parents=True)
    (root / name / "manifest.json").write_text(json.dumps({"backend": backend}))
    return root / name


def test_a_run_directory_and_a_bundle(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "student.json").write_text("{}")
    run = resolve_model(tmp_path / "run")
    assert (run.kind, run.backend, run.root, run.candidates) == (RUN, "torch", tmp_path / "run", ())
    b = _bundle(tmp_path, "b", "onnx")
    bundle = resolve_model(b)
    assert (bundle.kind, bundle.backend, bundle.root) == (BUNDLE, "onnx", b)


@pytest.mark.parametrize(("system", "first"), [("Linux", "c-onnx"), ("Windows", "c-onnx"), ("Darwin", "a-coreml")])
def test_a_folder_of_bundles_puts_the_platforms_best_first(tmp_path, system, first):
    for name, backend in (("a-coreml", "coreml"), ("b-executorch", "executorch-xnnpack"), ("c-onnx", "onnx")):
        _bundle(tmp_path, name, backend)
    (tmp_path / "d-broken").mkdir()
    (tmp_path / "d-broken" / "manifest.json").write_text("{not json")
    found = resolve_model(tmp_path, system=system)
    assert found.kind == BUNDLES and found.root == tmp_path / first
    assert len(found.candidates) == 3 and tmp_path / "d-broken" not in found.candidates
    if system == "Linux":
        assert found.backends == ("onnx", "executorch-xnnpack", "coreml")


def test_nothing_there_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(tmp_path / "nope")
    with pytest.raises(ModelNotFoundError, match="neither a run directory"):
        resolve_model(tmp_path)
