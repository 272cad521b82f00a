"""An index created with float16 embeddings: half the bytes on disk, searched by the half-size kernel,
checksummed, compacted and reopened as float16; a float32 index is never converted silently."""
import numpy as np
import pytest

from app.engine.scanner import ScannedFile, ScanPlan
from app.engine.search import top_k_rows
from app.engine.store import EmbeddingStore, IndexedPhoto, StoreError

DIM = 32


def _unit(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_float16_index_halves_the_matrix_and_finds_float32s_top_k(tmp_path):
    emb = _unit(300)
    for dtype in ("float32", "float16"):
        with EmbeddingStore(tmp_path / dtype, embedding_dtype=dtype) as store:
            _index(store, emb)
            assert store.embedding_dtype == dtype
    f32 = next((tmp_path / "float32").glob("embeddings-*.f32")).stat().st_size
    f16 = next((tmp_path / "float16").glob("embeddings-*.f16")).stat().st_size
    assert f16 * 2 == f32 == 300 * DIM * 4
    with EmbeddingStore(tmp_path / "float16", readonly=True) as store:
        snap = store.snapshot()
        assert snap.matrix.dtype == np.float16 and store.embedding_dtype == "float16"
        for q in emb[:20]:
            rows, scores = top_k_rows(snap, q, 10)
            want = np.argsort(-(emb @ q), kind="stable")[:10]
            assert len(set(rows.tolist()) & set(want.tolist())) >= 9  # float32's top 10 within fp16 rounding
            np.testing.assert_allclose(scores, emb[rows] @ q, atol=2e-3)
        assert snap.intact(np.arange(300)).all()
        _pid, e = store.embedding_of_path("/g/p0.jpg")
        assert e.dtype == np.float32 and np.abs(e - emb[0]).max() < 1e-3


def test_float16_survives_reopen_compaction_and_refuses_the_other_dtype(tmp_path):
    emb = _unit(50, seed=1)
    with EmbeddingStore(tmp_path, embedding_dtype="float16") as store:
        _index(store, emb)
    with EmbeddingStore(tmp_path) as store:  # reopened without asking: stays float16, rows verified
        assert store.embedding_dtype == "float16" and store.recovered is None
        store.compact(force=True)  # a new matrix generation: still float16
        assert store.embedding_dtype == "float16" and store.check() == []
        assert list(tmp_path.glob("embeddings-*.f16")) and not list(tmp_path.glob("embeddings-*.f32"))
    with pytest.raises(StoreError, match="stores float16 embeddings, not float32"):
        EmbeddingStore(tmp_path, embedding_dtype="float32")
    with pytest.raises(StoreError, match="unknown embedding dtype"):
        EmbeddingStore(tmp_path / "other", embedding_dtype="bfloat16")


def test_an_existing_float32_index_keeps_working_and_is_not_migrated(tmp_path):
    emb = _unit(20, seed=2)
    with EmbeddingStore(tmp_path) as store:
        _index(store, emb)
    with pytest.raises(StoreError, match="stores float32 embeddings, not float16"):
        EmbeddingStore(tmp_path, embedding_dtype="float16")
    with EmbeddingStore(tmp_path, readonly=True) as store:
        assert store.snapshot().matrix.dtype == np.float32
        assert list(tmp_path.glob("embeddings-*.f32"))


def test_a_damaged_float16_row_is_caught_by_its_checksum(tmp_path):
    emb = _unit(10, seed=3)
    with EmbeddingStore(tmp_path, embedding_dtype="float16") as store:
        _index(store, emb)
    matrix = next(tmp_path.glob("embeddings-*.f16"))
    data = bytearray(matrix.read_bytes())
    data[3 * DIM * 2 + 5] ^= 0x01  # one bit of row 3
    matrix.write_bytes(bytes(data))
    with EmbeddingStore(tmp_path) as store:
        assert "1 of 10 embedding rows do not match" in (store.recovered or "")


def _index(store, emb):
    """Bind a model and commit ``emb`` as photos /g/p<i>.jpg in batches of 64 (row i = photo i)."""
    store.bind_model("m", DIM)
    store.apply_plan(ScanPlan(new=[ScannedFile(f"/g/p{i}.jpg", 100 + i, 1000 + i) for i in range(len(emb))]))
    pending = sorted(store.pending_after(0, 100_000), key=lambda r: r[1])
    by_path = {path: (pid, size, mtime) for pid, path, size, mtime in pending}
    for s in range(0, len(emb), 64):
        store.commit_batch([IndexedPhoto(by_path[f"/g/p{i}.jpg"][0], emb[i], *by_path[f"/g/p{i}.jpg"][1:], b"f" * 16)
                            for i in range(s, min(s + 64, len(emb)))])
