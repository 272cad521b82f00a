"""The indexing benchmark's physical reference, its 224-px input pipeline, and startup's side-by-side models."""
import json

import numpy as np
import pytest
from PIL import Image

from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import Encoders
from bench.decode_limit import decode_limit, decode_one
from bench.pooled_input import PooledInputEncoders
from bench.startup import comparison_models


def _jpegs(folder, n, size=(900, 600)):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"IMG_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=85)
        paths.append(str(path))
    return paths


def test_decode_limit_decodes_like_the_indexer_with_threads_and_processes(tmp_path):
    paths = _jpegs(tmp_path / "g", 4)
    assert decode_one(paths[0], 32) == (113, 75) and decode_one(paths[0], 224) == (450, 300)  # 1/8, 1/2
    limit = decode_limit(paths, 224, workers=2, repeats=1)
    assert limit["photos"] == 4 and limit["threads_photos_per_s"] > 0 and limit["processes_photos_per_s"] > 0
    assert limit["photos_per_s"] == max(limit["threads_photos_per_s"], limit["processes_photos_per_s"])


class _MeanColour(Encoders):
    """A 4-px model whose embedding is each channel's mean: pooling must not change it."""

    backend, model_id, embed_dim, tokenizer = "test", "mean-colour", 3, None
    preprocess = ImagePreprocess(4, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    def encode_images(self, pixels):
        assert pixels.shape[2:] == (4, 4)
        return pixels.mean(axis=(2, 3))

    def encode_tokens(self, tokens):
        raise AssertionError


def test_pooled_input_feeds_the_model_the_average_of_each_block():
    inner = _MeanColour()
    pooled = PooledInputEncoders(inner, 12)
    assert pooled.preprocess.image_size == 12 and pooled.model_id == inner.model_id
    big = np.random.default_rng(1).normal(size=(2, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(pooled.encode_images(big), big.mean(axis=(2, 3)), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="not a multiple"):
        PooledInputEncoders(inner, 10)


def test_startup_compares_the_forms_of_the_run_found_beside_it(tmp_path):
    run = tmp_path / "runs" / "offline"
    run.mkdir(parents=True)
    (run / "student.json").write_text(json.dumps({"spec": {"embed_dim": 8}, "preprocess": {"image_size": 32}}))
    bundles = tmp_path / "bundles"
    for name, backend in (("offline-onnx", "onnx"), ("offline-executorch", "executorch-xnnpack"),
                          ("other-onnx", "onnx")):
        (bundles / name).mkdir(parents=True)
        (bundles / name / "manifest.json").write_text(json.dumps(
            {"backend": backend, "precision": "fp32", "embedding_dim": 8, "image": {"image_size": 32},
             "source": {"checkpoint": str(run)}}))
    found = comparison_models(bundles / "offline-onnx")
    assert found[0] == (bundles / "offline-onnx").resolve()
    assert set(found[1:]) == {run.resolve(), (bundles / "offline-executorch").resolve()}
    assert comparison_models(run)[0] == run.resolve() and len(comparison_models(run)) == 3
