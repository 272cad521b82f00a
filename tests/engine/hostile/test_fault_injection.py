"""Faults injected into a working index: kill -9 at random instants (compaction included), a second writer,
damaged database and matrix files. Each ends in a consistent index that returns only real photos."""
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from crash_writer import expected
from hostile_checks import deadline, sandbox_is_empty, tree_fingerprint
from hostile_gallery import encoded

from app.engine.__main__ import main
from app.engine.store import DB_NAME, EmbeddingStore, StoreError

REPO = Path(__file__).resolve().parents[3]
KILLS = 12


def _live_rows_hold_their_own_embeddings(data: Path) -> int:
    with EmbeddingStore(data) as store:
        assert store.check() == []
        snap = store.snapshot()
        live = np.flatnonzero(snap.photo_ids >= 0)
        paths = store.paths_of(snap.photo_ids[live].tolist())
        for r in live:
            np.testing.assert_allclose(snap.matrix[r], expected(paths[int(snap.photo_ids[r])]), atol=1e-7)
        return len(live)


def test_kill_9_at_random_instants_including_compaction(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(14)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = Path(__file__).with_name("crash_writer.py")
    checked = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, str(script), str(data)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(0.3 + rng.random() * 1.2)  # after start-up: inside add / commit / delete / compact
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        checked += _live_rows_hold_their_own_embeddings(data)
    assert checked > 0


def test_a_second_writer_is_refused_in_one_line(tmp_path, random_student_dir, make_gallery, capsys):
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--model", str(random_student_dir), "index", "--gallery", str(make_gallery(3)),
            "--no-progress"]
    assert main(args) == 0
    with EmbeddingStore(data):
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "another process is writing" in err and len(err.strip().splitlines()) == 1
    assert main(args) == 0


def _matrix(data: Path) -> Path:
    return next(data.glob("embeddings-*.f32"))


def _set_meta(data: Path, key: str, value: str) -> None:
    with sqlite3.connect(data / DB_NAME) as c:
        c.execute("UPDATE meta SET value=? WHERE key=?", (value, key))


def _flip(path: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = bytearray(path.read_bytes())
    for off in rng.integers(0, len(data), size=count):
        data[off] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "db-random-bytes": lambda d, out: (d / DB_NAME).write_bytes(os.urandom(8192)),
    "db-cut-in-half": lambda d, out: os.truncate(d / DB_NAME, (d / DB_NAME).stat().st_size // 2),
    "db-header-zeroed": lambda d, out: (d / DB_NAME).write_bytes(b"\0" * 100 + (d / DB_NAME).read_bytes()[100:]),
    "matrix-100-byte-flips": lambda d, out: _flip(_matrix(d), 100, 0),
    "matrix-cut": lambda d, out: os.truncate(_matrix(d), _matrix(d).stat().st_size // 3),
    "matrix-deleted": lambda d, out: _matrix(d).unlink(),
    "matrix-zeroed": lambda d, out: _matrix(d).write_bytes(b"\0" * _matrix(d).stat().st_size),
    "matrix-is-a-link-outside": lambda d, out: (os.replace(_matrix(d), out), os.symlink(out, d / _matrix_name(d))),
    "meta-matrix-file-absolute": lambda d, out: _set_meta(d, "matrix_file", str(out)),
    "meta-matrix-file-dotdot": lambda d, out: _set_meta(d, "matrix_file", "../outside.bin"),
    "meta-embed-dim-garbage": lambda d, out: _set_meta(d, "embed_dim", "1e10"),
    "meta-n-rows-too-many": lambda d, out: _set_meta(d, "n_rows", "999999"),
}


def _matrix_name(d: Path) -> str:
    with sqlite3.connect(d / DB_NAME) as c:
        return dict(c.execute("SELECT key, value FROM meta").fetchall())["matrix_file"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, random_student_dir):
    """A gallery and its index, built once; each damage test works on copies."""
    root = tmp_path_factory.mktemp("indexed")
    (root / "gallery").mkdir()
    for i in range(12):
        (root / "gallery" / f"p{i:02d}.png").write_bytes(encoded("PNG", size=(32, 32), seed=i))
    assert main(["--data-dir", str(root / "data"), "--model", str(random_student_dir), "index", "--gallery",
                 str(root / "gallery"), "--no-progress"]) == 0
    return root


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index(damage, indexed, tmp_path, sandbox, random_student_dir, capsys):
    gallery, data = indexed / "gallery", tmp_path / "data"
    shutil.copytree(indexed / "data", data)
    real = {str(p) for p in gallery.iterdir()}
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"precious " * 1000)
    DAMAGE[damage](data, outside)
    outside_before = outside.read_bytes()
    gallery_before = tree_fingerprint(gallery)
    base = ["--data-dir", str(data), "--model", str(random_student_dir)]
    import json

    with deadline(120):
        code = main([*base, "search", "a photo", "--k", "100", "--json"])  # the reader first: never wrong
        out = capsys.readouterr().out
        assert code in (0, 2)
        if code == 0:
            assert {r["path"] for r in json.loads(out)} <= real
        assert main([*base, "status", "--check"]) in (0, 1, 2)
        assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0  # the writer repairs
        assert main([*base, "status", "--check"]) == 0
        capsys.readouterr()
        assert main([*base, "search", "a photo", "--k", "100", "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
    assert sorted(r["path"] for r in results) == sorted(real)  # each real photo exactly once
    assert all(abs(r["score"]) <= 1.0001 for r in results)
    if outside.exists() and not outside.is_symlink():
        assert outside.read_bytes() == outside_before
    assert tree_fingerprint(gallery) == gallery_before
    assert sandbox_is_empty(sandbox) == []
    with pytest.raises(StoreError, match="another process"), EmbeddingStore(data):
        EmbeddingStore(data)
