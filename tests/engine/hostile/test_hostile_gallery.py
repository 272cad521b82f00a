"""Every hostile gallery entry, indexed and searched: no hang, no exception, the gallery byte-identical,
nothing written outside the data directory, and search returns only real photos."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_checks import deadline, sandbox_is_empty, tree_fingerprint
from hostile_gallery import CASES, build_case

from app.engine.engine import SearchEngine

REPO = Path(__file__).resolve().parents[3]
CASE_BUDGET_S = 60  # per case, wall clock on a loaded 2-core machine; a hang is unbounded


def _good_photos(gallery: Path, image_writer) -> list[str]:
    return [str(image_writer(gallery / f"good{i}.jpg", size=(40, 30), seed=100 + i)) for i in range(2)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_entry(case, tmp_path, sandbox, fake_encoders, image_writer):
    gallery = tmp_path / "gallery"
    real = build_case(case, gallery) + _good_photos(gallery, image_writer)
    data = tmp_path / "data"
    gallery_before = tree_fingerprint(gallery)
    outside_before = tree_fingerprint(tmp_path, skip=(gallery, data, sandbox))
    start = time.monotonic()
    with deadline(CASE_BUDGET_S), SearchEngine(data, fake_encoders) as engine:
        first = engine.update([gallery])
        second = engine.update([gallery])  # a hostile entry must not cost the next run either
        results = engine.search_text("anything", k=1000)
        problems = engine.store.check()
    assert time.monotonic() - start < CASE_BUDGET_S
    assert problems == []
    found = {r.path for r in results}
    assert found <= set(real), f"not real photos returned: {found - set(real)}"
    assert all(p in found for p in real[-2:])  # the good photos are always indexed
    assert not second.scan.plan.has_changes and second.index.done == 0
    assert first.index.indexed == len(found)
    assert tree_fingerprint(gallery) == gallery_before
    assert tree_fingerprint(tmp_path, skip=(gallery, data, sandbox)) == outside_before
    assert sandbox_is_empty(sandbox) == []


@pytest.mark.slow
def test_the_whole_hostile_gallery_through_the_command_line(tmp_path, sandbox, random_student_dir, image_writer):
    """One real process per command (index, search, status), over every case at once: exit codes, no
    traceback, bounded time; as above for the gallery, the outside and the results."""
    gallery = tmp_path / "gallery"
    real = []
    for case in sorted(CASES):
        real += build_case(case, gallery / case)
    real += _good_photos(gallery, image_writer)
    data = tmp_path / "data"
    gallery_before = tree_fingerprint(gallery)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "app.engine", "--data-dir", str(data), "--model", str(random_student_dir)]

    def run(*args: str) -> subprocess.CompletedProcess:
        start = time.monotonic()
        proc = subprocess.run([*base, *args], check=False, cwd=sandbox / "cwd", env=env, capture_output=True, timeout=300)
        assert "Traceback" not in proc.stderr.decode(errors="replace"), proc.stderr.decode(errors="replace")
        assert time.monotonic() - start < 300
        return proc

    assert run("index", "--gallery", str(gallery), "--no-progress").returncode == 0
    search = run("search", "a photo", "--k", "1000", "--json")
    assert search.returncode == 0
    import json

    found = {r["path"] for r in json.loads(search.stdout)}
    assert found <= set(real) and len(found) >= len(real) - 3  # at most the text-bomb and huge cases differ
    assert run("status", "--check").returncode == 0
    assert tree_fingerprint(gallery) == gallery_before
    assert sandbox_is_empty(sandbox) == []
