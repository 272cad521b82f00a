"""Half-size embeddings: the codecs, the blocked top-K kernel, and recall through the engine against float32."""
import numpy as np
import pytest
from test_recall_parity import KS, engine_text_to_image_recall

from app.desktop.models import load_model
from app.engine import engine as engine_module
from app.engine.engine import SearchEngine
from app.engine.half_embeddings import decode_rows, encode_rows, half_scores, top_k_half
from app.engine.native_half_topk import native_kernel
from app.engine.search import top_k_rows
from compression.data.loading import load_datasets
from compression.data.synthetic import write_split_as_folder


def _unit_rows(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind, tolerance", [("float16", 5e-4), ("int8", 1e-2)])
def test_codecs_halve_or_quarter_the_bytes_and_stay_close(kind, tolerance):
    x = _unit_rows(1000, 64)
    rows = encode_rows(x, kind)
    assert rows.nbytes <= x.nbytes / (2 if kind == "float16" else 3.5)
    assert np.abs(decode_rows(rows) - x).max() < tolerance


@pytest.mark.parametrize("kind", ["float16", "int8"])
def test_kernel_equals_a_plain_product_over_the_decoded_rows(kind):
    x = _unit_rows(5000, 48, seed=1)  # several blocks, split over threads
    rows, q = encode_rows(x, kind), x[7]
    expected = decode_rows(rows) @ q
    for workers in (1, 3):
        np.testing.assert_allclose(half_scores(rows, q, workers), expected, rtol=0, atol=1e-5)
    top, scores = top_k_half(rows, q, 10, dead_rows=np.array([7]))
    assert 7 not in top and len(top) == 10 and np.all(np.diff(scores) <= 0)
    np.testing.assert_array_equal(top, [r for r in np.argsort(-expected, kind="stable") if r != 7][:10])


def test_recall_through_the_engine_float16_equals_float32_int8_is_reported(tiny_run, tmp_path, monkeypatch):
    """float16 through the store hook (an index created so, searched by the engine as the app does);
    int8 has no store hook yet: the engine's top-K is swapped for the int8 kernel."""
    from app.engine.recall import read_captions, recall_at

    cfg, root, _ = tiny_run
    split = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False).test
    folder = tmp_path / "benchmark-gallery"
    captions = read_captions(write_split_as_folder(split, folder))
    recalls, calls = {}, []
    for dtype in ("float32", "float16"):
        with SearchEngine(tmp_path / dtype, load_model(root / "runs" / "tiny", threads=1), embedding_dtype=dtype) as engine:
            assert engine.update([folder / "images"]).index.indexed == len(split)
            assert engine.store.snapshot().matrix.dtype == dtype
            recalls[dtype] = recall_at(engine, captions)
            helper = engine_text_to_image_recall(engine, split, folder)  # the parity tests' own count
            assert all(recalls[dtype][f"R@{k}"] == pytest.approx(helper[f"t2i_R@{k}"]) for k in KS)
            if dtype == "float32":
                def int8_top_k(snapshot, query, k):
                    calls.append("int8")
                    return top_k_half(encode_rows(snapshot.matrix, "int8"), query, min(k, snapshot.live),
                                      snapshot.dead_rows)

                monkeypatch.setattr(engine_module, "top_k_rows", int8_top_k)
                recalls["int8"] = recall_at(engine, captions)
                monkeypatch.setattr(engine_module, "top_k_rows", top_k_rows)
    assert calls.count("int8") == len(captions)  # every query ran on the codes
    print("recall through the engine:", recalls)
    for k in KS:
        assert abs(recalls["float16"][f"R@{k}"] - recalls["float32"][f"R@{k}"]) <= 0.1, recalls
        assert abs(recalls["int8"][f"R@{k}"] - recalls["float32"][f"R@{k}"]) <= 5.0, recalls


@pytest.mark.parametrize("backend", ["native", "faiss", "numpy"])
def test_every_float16_backend_gives_float32s_top_k(backend, monkeypatch):
    if backend == "faiss":
        pytest.importorskip("faiss")
    if backend == "native" and native_kernel() is None:
        pytest.skip("no native kernel: `make setup` builds it (test_native_half_topk.py builds and checks it)")
    x = _unit_rows(20000, 64, seed=2)
    if backend == "faiss":
        from app.engine import half_embeddings
        monkeypatch.setattr(half_embeddings, "SMALL_SHARD_BYTES", 0)  # several FAISS shards
    x[123] = np.nan  # a damaged row never ranks
    rows = encode_rows(x, "float16")
    dead = np.array([5, 9000, 19999])
    for qi in (5, 777, 15000):
        q = x[qi]
        exact = decode_rows(rows) @ q
        exact[~np.isfinite(exact)] = -np.inf
        exact[dead] = -np.inf
        want = np.lexsort((np.arange(len(exact)), -exact))[:10]
        top, scores = top_k_half(rows, q, 10, dead_rows=dead, backend=backend)
        np.testing.assert_array_equal(top, want)
        np.testing.assert_allclose(scores, exact[want], rtol=0, atol=1e-5)
        fp32 = np.argsort(-np.where(np.isin(np.arange(len(x)), dead), -np.inf, np.nan_to_num(x @ q, nan=-np.inf)))[:10]
        assert len(set(top) & set(fp32)) >= 9  # float32's own top 10, within float16 rounding


def test_a_small_float16_matrix_is_searched_on_the_calling_thread():
    pytest.importorskip("faiss")
    from app.engine.half_embeddings import FaissHalfIndex
    small = FaissHalfIndex(encode_rows(_unit_rows(10_000, 128), "float16").codes, workers=2)
    assert len(small.shards) == 1 and small._pool is None  # no pool worker to wake per query
    big = FaissHalfIndex(encode_rows(_unit_rows(70_000, 128), "float16").codes, workers=2)
    assert len(big.shards) == 8  # 4 per core


def test_float16_default_backend_without_the_native_kernel_is_faiss_where_installed(monkeypatch):
    from app.engine import half_embeddings
    from app.engine.half_embeddings import default_backend, faiss_available
    monkeypatch.setattr(half_embeddings, "native_kernel", lambda: None)
    rows = encode_rows(_unit_rows(10, 8), "float16")
    assert default_backend(rows) == ("faiss" if faiss_available() else "numpy")
    assert default_backend(encode_rows(_unit_rows(10, 8), "int8")) == "numpy"
