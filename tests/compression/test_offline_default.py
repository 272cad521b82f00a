"""The main job, end to end, from an empty cache.

- The offline default (`python -m compression.run` with no --config, what `make run` runs): the clip art
  model, on a subset of the training drawings so that the suite stays inside CI's budget, then the
  ONNX export the desktop app loads and the engine's search of the real test drawings by their captions.
- The synthetic benchmark (`--config synthetic`) on its real config: teacher from scratch, every stage.
Slow: several minutes each on 2 CPU cores.
"""
import json
import shutil

import pytest

from compression.run import main

SUBSET = 300  # training drawings (of 2,341); validation and test splits stay whole (299 / 260)


@pytest.mark.slow
def test_offline_default_is_the_clip_art_model_end_to_end(tmp_path, capsys):
    from app.engine.__main__ import main as engine_main
    from compression.data.openclipart import OPENCLIPART_ROOT, load_openclipart
    from export.onnx import main as export_onnx

    runs = tmp_path / "runs"
    assert main(["--runs-dir", str(runs), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                 "--set", f"limit={SUBSET}"]) == 0
    run_dir = runs / "offline"
    student = json.loads((run_dir / "student.json").read_text())
    assert student["kind"] == "assembled-student" and student["tokenizer"]["kind"] == "wordpiece"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["results"]["test"]
    n = 260
    chance = 2 * 100 * (1 + 5 + 10) / n  # RSUM of a random ranking of the 260 test drawings
    assert test["assembled teacher"]["rsum"] > 4 * chance
    assert test["student"]["rsum"] > 4 * chance
    assert test["student"]["rsum"] >= 0.8 * test["assembled teacher"]["rsum"]
    assert "student RSUM" in capsys.readouterr().out
    # photographs: the ConSE channel (ImageNet's classifier saw photos) is what carries the shipped student there
    photos = metrics["results"]["real-photo check"]
    assert metrics["conse_channel"]["weight"] < 1.0
    assert photos["student"]["rsum"] > photos["student, joint space"]["rsum"]
    assert student["conse"]["weight"] == metrics["conse_channel"]["weight"]

    # the export the app loads, then the engine's own recall on the real test drawings by their captions
    bundle = tmp_path / "bundle"
    assert export_onnx(["--checkpoint", str(run_dir), "--out", str(bundle), "--log-level", "WARNING"]) == 0
    split = load_openclipart(OPENCLIPART_ROOT).splits["test"]
    assert len(split) == n
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    lines = []
    for key, captions in zip(split.names, split.captions):
        name = key.replace("/", "_") + ".png"
        shutil.copyfile(OPENCLIPART_ROOT / "png" / f"{key}.png", gallery / name)
        lines.append(f"gallery/{name}\t{captions[0]}")
    (tmp_path / "captions.tsv").write_text("\n".join(lines) + "\n")
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(bundle)]
    assert engine_main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    capsys.readouterr()
    assert engine_main([*base, "eval", "--captions", str(tmp_path / "captions.tsv"), "--json"]) == 0
    engine = json.loads(capsys.readouterr().out)
    assert engine["captions"] == n and engine["images"] == n
    # the engine decodes the PNGs itself (the pipeline resized from its 260-px cache): close, not identical
    for k in (1, 5, 10):
        assert abs(engine[f"R@{k}"] - test["student"][f"t2i_R@{k}"]) <= 5.0, (k, engine, test["student"])
    assert engine["R@10"] > 3 * 100 * 10 / n


@pytest.mark.slow
def test_synthetic_benchmark_end_to_end(tmp_path, capsys):
    assert main(["--config", "synthetic", "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "synthetic"
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
