"""Tests for bench.model_info: what a --model path is, and a store filled with given embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import model_info, search
from tests.bench.run_dir_fixture import write_run_dir


def test_read_model_info(tmp_path):
    run = write_run_dir(tmp_path / "runs" / "offline")
    info = model_info.read_model_info(run)
    assert (info.kind, info.backend, info.embed_dim, info.image_size, info.run_dir) == (
        "run",
        "torch",
        48,
        32,
        run,
    )

    bundle = tmp_path / "bundles" / "b"
    bundle.mkdir(parents=True)
    manifest = {
        "backend": "executorch-xnnpack",
        "precision": "int8",
        "embedding_dim": 48,
        "image": {"image_size": 32},
        "source": {"checkpoint": str(run)},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    info = model_info.read_model_info(bundle)
    assert (info.kind, info.backend, info.precision, info.run_dir) == (
        "bundle",
        "executorch-xnnpack",
        "int8",
        run,
    )
    manifest["source"]["checkpoint"] = str(tmp_path / "gone")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert model_info.read_model_info(bundle).run_dir is None

    with pytest.raises(ValueError, match="folder of bundles"):
        model_info.read_model_info(tmp_path / "bundles")
    with pytest.raises(ValueError, match="neither a run directory"):
        model_info.read_model_info(tmp_path)
    del manifest["embedding_dim"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest.json has no embedding_dim"):
        model_info.read_model_info(bundle)


def test_fill_store_and_bytes_per_photo(tmp_path):
    from app.engine.store import EmbeddingStore

    emb = search.synthetic_embeddings(40, 24, 1, "uniform")[0]
    model_info.fill_store(tmp_path / "store", "m", emb, [f"/photos/{i}.jpg" for i in range(40)], batch=16)
    with EmbeddingStore(tmp_path / "store", readonly=True) as store:
        snap = store.snapshot()
        assert snap.live == 40
        np.testing.assert_array_equal(np.asarray(snap.matrix), emb)
    measured = search.store_bytes_per_photo(tmp_path, 24, n=50)
    assert measured["matrix_bytes_per_photo"] == 4 * 24 and measured["sqlite_bytes_per_photo"] > 16
    with pytest.raises(ValueError, match="2 paths for 40 embeddings"):
        model_info.fill_store(tmp_path / "other", "m", emb, ["a", "b"])
