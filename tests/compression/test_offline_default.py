"""The main job, end to end: `python -m compression.run` on the offline default, from an empty cache.

Slow (about 10-15 minutes on 2 CPU cores): it trains the teacher from scratch and runs every stage.
It checks the issue's acceptance criteria on the real default config, not a reduced one.
"""
import json

import pytest

from compression.run import main


@pytest.mark.slow
def test_offline_default_end_to_end(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "offline"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    r, sizes = metrics["retrieval"], metrics["sizes"]
    assert metrics["test_split"] == {"images": 1000, "captions": 5000}
    # the student is small: image tower at most 40% of the teacher's, 4-layer text tower
    assert sizes["student_image"]["params"] <= 0.4 * sizes["teacher_image"]["params"]
    assert len(metrics["student_text_layers"]) in (4, 6)
    # ... and keeps at least 95% of the fine-tuned teacher's RSUM
    assert r["student"]["rsum"] >= 0.95 * r["teacher_finetuned"]["rsum"]
    # both far above the untrained baseline; and far from solving the benchmark
    for key in ("student", "teacher_finetuned"):
        assert r[key]["rsum"] >= 3 * r["student_untrained"]["rsum"]
        assert r[key]["t2i_R@1"] < 90
    assert "student (this run)" in capsys.readouterr().out
