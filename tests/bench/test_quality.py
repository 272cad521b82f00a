"""Tests for bench.quality: retrieval quality vs size and speed, from a run's metrics and its ablations."""

from __future__ import annotations

import pytest

from bench import common, quality
from tests.bench.run_dir_fixture import PNG_MAGIC, write_run_dir


def test_quality_reads_the_run_and_its_ablations(tmp_path):
    run = write_run_dir(tmp_path / "runs" / "offline")
    write_run_dir(tmp_path / "runs" / "ablation" / "wo-KD")
    (tmp_path / "runs" / "ablation" / "wo-sequential").mkdir()
    result = quality.run(True, tmp_path, run)
    labels = [r["label"] for r in result["rows"]]
    assert labels[:2] == ["teacher, zero-shot", "teacher, fine-tuned"] and "student, w/o KD" in labels
    assert result["unfinished_ablations"] == ["wo-sequential"]
    student = next(r for r in result["rows"] if r["label"] == "student (this run)")
    assert (
        student["params"] == 7_000_000
        and student["images_per_s"] == 300.0
        and student["texts_per_s"] == 400.0
    )
    text = quality.to_markdown(result)
    assert "### Retrieval vs size and speed" in text and "70% of the teacher's parameters" in text
    assert "3.00x as many images and 1.60x as many texts" in text and "wo-sequential" in text
    (png,) = quality.plot(result, tmp_path)
    assert png.read_bytes()[:8] == PNG_MAGIC

    (run / "metrics.json").unlink()
    with pytest.raises(common.SkipSection, match="has no metrics.json"):
        quality.run(True, tmp_path, run)
