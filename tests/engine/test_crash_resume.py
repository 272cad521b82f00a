"""kill -9 in the middle of indexing, then a restart: the index ends complete, consistent, and equal to a clean one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.desktop.models import load_model
from app.engine.__main__ import main
from app.engine.engine import SearchEngine
from app.engine.store import EmbeddingStore, StoreError

REPO = Path(__file__).resolve().parents[2]
N_PHOTOS = 240


def _index_args(data_dir: Path, model: Path, gallery: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--model", str(model),
            "index", "--gallery", str(gallery), "--no-progress", "--batch-size", "8", *extra]


def _indexed(data_dir: Path) -> int:
    try:
        with EmbeddingStore(data_dir, readonly=True) as store:
            return store.stats().indexed
    except (StoreError, OSError):  # not created yet
        return 0


def _embeddings(store: EmbeddingStore) -> dict[str, np.ndarray]:
    snap = store.snapshot()
    live = np.flatnonzero(snap.photo_ids >= 0)
    paths = store.paths_of(snap.photo_ids[live].tolist())
    return {paths[int(snap.photo_ids[r])]: np.array(snap.matrix[r]) for r in live}


@pytest.fixture
def small_gallery(tmp_path, image_writer) -> Path:
    root = tmp_path / "gallery"
    for i in range(N_PHOTOS):
        image_writer(root / f"d{i % 4}" / f"{i:04d}.png", size=(32, 32), colour=(i % 256, (7 * i) % 256, 90), seed=i)
    return root


def test_kill_9_mid_indexing_then_restart(tmp_path, random_student_dir, small_gallery, gallery_state, capsys):
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = gallery_state(small_gallery)
    # --throttle (a documented flag: pause after each batch) keeps the run going long enough to be killed mid-way
    cmd = [sys.executable, "-m", "app.engine", *_index_args(data, random_student_dir, small_gallery, "--throttle", "0.05")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while _indexed(data) < 40:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the indexer made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with EmbeddingStore(data) as store:  # opens (and cuts any half-written batch off the matrix)
        assert store.check() == []
        interrupted = store.stats()
    assert 40 <= interrupted.indexed < N_PHOTOS and interrupted.indexed + interrupted.pending == N_PHOTOS

    # the restart runs the same CLI entry point, in this process (a second interpreter start costs seconds)
    assert main(_index_args(data, random_student_dir, small_gallery)) == 0
    assert f"{N_PHOTOS - interrupted.indexed} indexed" in capsys.readouterr().out  # resumed, nothing re-encoded

    encoders = load_model(random_student_dir)
    with SearchEngine(tmp_path / "clean", encoders) as clean:
        clean.update([small_gallery])
        expected = _embeddings(clean.store)
    with EmbeddingStore(data) as store:
        assert store.check() == []
        st = store.stats()
        assert (st.indexed, st.pending, st.failed) == (N_PHOTOS, 0, 0)
        got = _embeddings(store)
    assert got.keys() == expected.keys() and len(got) == N_PHOTOS
    for path in expected:
        np.testing.assert_allclose(got[path], expected[path], atol=1e-5, err_msg=path)
    assert gallery_state(small_gallery) == before
