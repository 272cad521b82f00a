"""The store: commits, crash recovery at every interesting instant, corruption, model changes, compaction."""
import os
import sqlite3

import numpy as np
import pytest

from app.engine.scanner import ScannedFile, ScanPlan
from app.engine.store import (
    DB_NAME,
    EmbeddingStore,
    FailedPhoto,
    IndexedPhoto,
    StoreBusyError,
    StoreError,
)

DIM = 8


def _unit(rng, n):
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(store: EmbeddingStore, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Add n photos and index them in batches of 4; returns path -> embedding."""
    rng = np.random.default_rng(seed)
    files = [ScannedFile(f"/g/p{seed}_{i}.jpg", 100 + i, 1000 + i) for i in range(n)]
    store.apply_plan(ScanPlan(new=files))
    emb = _unit(rng, n)
    pending = store.pending_after(0, 10_000)
    for s in range(0, n, 4):
        store.commit_batch([IndexedPhoto(pid, emb[j], size, mtime, b"f" * 16)
                            for j, (pid, _, size, mtime) in enumerate(pending[s : s + 4], start=s)])
    return {path: emb[j] for j, (_, path, _, _) in enumerate(pending)}


def _embeddings_by_path(store: EmbeddingStore) -> dict[str, np.ndarray]:
    snap = store.snapshot()
    live = np.flatnonzero(snap.photo_ids >= 0)
    paths = store.paths_of(snap.photo_ids[live].tolist())
    return {paths[int(snap.photo_ids[r])]: np.array(snap.matrix[r]) for r in live}


def test_commit_and_snapshot(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        expected = _fill(store, 10)
        snap = store.snapshot()
        assert snap.matrix.shape == (10, DIM) and snap.live == 10 and len(snap.dead_rows) == 0
        assert isinstance(snap.matrix, np.memmap)  # read in place, not loaded
        got = _embeddings_by_path(store)
        assert got.keys() == expected.keys()
        for p in expected:
            np.testing.assert_array_equal(got[p], expected[p])
        assert store.check() == [] and store.stats().indexed == 10


def test_uncommitted_rows_are_cut_on_open(tmp_path):
    """A crash after the embeddings were written but before the SQLite commit: the rows are garbage."""
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        expected = _fill(store, 6)
        matrix_file = tmp_path / store._meta()["matrix_file"]
    with open(matrix_file, "ab") as f:
        f.write(np.ones((3, DIM), np.float32).tobytes() + b"\x01\x02")  # an in-flight batch, half written
    with EmbeddingStore(tmp_path) as store:
        assert matrix_file.stat().st_size == 6 * DIM * 4
        assert store.check() == []
        got = _embeddings_by_path(store)
        assert all(np.array_equal(got[p], expected[p]) for p in expected)
        _fill(store, 2, seed=1)  # appends where the committed rows end
        assert store.check() == [] and store.stats().indexed == 8


def test_lost_matrix_rows_are_queued_again(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        _fill(store, 8)
        matrix_file = tmp_path / store._meta()["matrix_file"]
    os.truncate(matrix_file, 5 * DIM * 4 + 3)  # the file system lost the end of the matrix
    with EmbeddingStore(tmp_path) as store:
        st = store.stats()
        assert (st.indexed, st.pending, st.rows) == (5, 3, 5)
        assert store.check() == [] and "encoded again" in store.recovered


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        _fill(store, 4)
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    for side in ("-wal", "-shm"):
        (tmp_path / (DB_NAME + side)).unlink(missing_ok=True)
    with EmbeddingStore(tmp_path) as store:
        assert "unreadable" in store.recovered
        assert store.stats().photos == 0 and store.check() == []
        store.bind_model("m1", DIM)
        _fill(store, 2)
        assert store.stats().indexed == 2
    assert any(p.name.startswith(DB_NAME + ".corrupt-") for p in tmp_path.iterdir())


def test_half_overwritten_database_is_rebuilt(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        _fill(store, 40)
    db = tmp_path / DB_NAME
    with sqlite3.connect(db) as c:  # fold the WAL in so the main file holds the data
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096:8192] = os.urandom(4096)  # a page of garbage
    db.write_bytes(bytes(data))
    with EmbeddingStore(tmp_path) as store:
        assert store.check() == []
        assert store.recovered is None or "unreadable" in store.recovered


def test_model_change_drops_embeddings_and_requeues(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        _fill(store, 5)
        store.apply_plan(ScanPlan(new=[ScannedFile("/g/bad.jpg", 1, 1)]))
        store.commit_batch([], [FailedPhoto(store.pending_after(0, 1)[0][0], "corrupt or truncated image")])
    with EmbeddingStore(tmp_path) as store:
        assert store.bind_model("m1", DIM) is False
        assert store.bind_model("m2", DIM * 2) is True
        st = store.stats()
        assert (st.rows, st.indexed, st.pending, st.failed, st.embed_dim) == (0, 0, 5, 1, DIM * 2)
        assert "re-indexing" in store.recovered
        assert store.snapshot().matrix.shape == (0, DIM * 2)
        assert store.check() == []
        assert len(list(tmp_path.glob("embeddings-*.f32"))) == 1


def test_newer_schema_is_refused_not_destroyed(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="newer than this engine"):
        EmbeddingStore(tmp_path)
    assert (tmp_path / DB_NAME).exists()


def test_one_writer_at_a_time_readers_welcome(tmp_path):
    with EmbeddingStore(tmp_path) as writer:
        writer.bind_model("m1", DIM)
        with pytest.raises(StoreBusyError, match="another process"):
            EmbeddingStore(tmp_path)
        with EmbeddingStore(tmp_path, readonly=True) as reader:
            assert reader.snapshot().live == 0
            _fill(writer, 3)
            assert reader.snapshot().live == 3  # sees the writer's commit
            with pytest.raises(StoreError, match="read-only"):
                reader.apply_plan(ScanPlan(new=[ScannedFile("/x.jpg", 1, 1)]))


def test_readonly_without_an_index_says_what_to_do(tmp_path):
    with pytest.raises(StoreError, match="run `python -m app.engine index"):
        EmbeddingStore(tmp_path / "nothing", readonly=True)


def test_deleted_and_changed_rows_die_and_compaction_keeps_the_rest(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        expected = _fill(store, 12)
        known = store.known_photos()
        doomed = sorted(known)[:5]
        changed = sorted(known)[5]
        store.apply_plan(ScanPlan(deleted=[known[p].id for p in doomed],
                                  changed=[(known[changed].id, ScannedFile(changed, 1, 2))]))
        snap = store.snapshot()
        assert snap.live == 7 and len(snap.dead_rows) == 5  # the changed photo stays searchable meanwhile
        assert store.count_pending() == 1
        new = (np.ones(DIM) / np.sqrt(DIM)).astype(np.float32)
        store.commit_batch([IndexedPhoto(known[changed].id, new, 1, 2, b"g" * 16)])
        assert store.snapshot().live == 7 and len(store.snapshot().dead_rows) == 6
        assert store.compact(force=True)
        snap = store.snapshot()
        assert snap.matrix.shape[0] == 7 and len(snap.dead_rows) == 0
        got = _embeddings_by_path(store)
        for p in sorted(known)[6:]:
            np.testing.assert_array_equal(got[p], expected[p])
        np.testing.assert_array_equal(got[changed], new)
        assert store.check() == [] and len(list(tmp_path.glob("embeddings-*.f32"))) == 1


def test_stray_generation_from_an_interrupted_compaction_is_removed(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        _fill(store, 3)
        current = store._meta()["matrix_file"]
    (tmp_path / "embeddings-99.f32").write_bytes(b"\0" * 64)
    with EmbeddingStore(tmp_path) as store:
        assert [p.name for p in tmp_path.glob("embeddings-*.f32")] == [current]
        assert store.check() == []


def test_non_finite_embeddings_are_refused(tmp_path):
    with EmbeddingStore(tmp_path) as store:
        store.bind_model("m1", DIM)
        store.apply_plan(ScanPlan(new=[ScannedFile("/a.jpg", 1, 1)]))
        pid = store.pending_after(0, 1)[0][0]
        with pytest.raises(StoreError, match="non-finite"):
            store.commit_batch([IndexedPhoto(pid, np.full(DIM, np.nan, np.float32), 1, 1, b"")])
        assert store.check() == [] and store.count_pending() == 1


def test_reader_of_an_index_being_created_gets_a_clear_error(tmp_path):
    sqlite3.connect(tmp_path / DB_NAME).close()  # the file exists, the writer has not created the schema yet
    with pytest.raises(StoreError, match="no index in"):
        EmbeddingStore(tmp_path, readonly=True)
