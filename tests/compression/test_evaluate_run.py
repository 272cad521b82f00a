"""A finished run evaluated on another test set from its run directory alone (the paper's Flickr30K 1K test of a COCO run)."""
import json

import pytest

from compression.data.loading import load_datasets
from compression.evaluate_run import main


def test_run_dir_evaluated_on_a_karpathy_test_split(tiny_run, tmp_path, capsys):
    cfg, root, metrics = tiny_run
    test = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False).test
    entries = []
    for i in range(len(test)):
        name = f"{i:03d}.png"
        test.images.load(i).save(tmp_path / name)  # lossless: the same pixels the run was evaluated on
        entries.append({"filename": name, "split": "test", "sentences": [{"raw": c} for c in test.captions[i]]})
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}))
    run_dir = root / "runs" / "tiny"
    assert main(["--run-dir", str(run_dir), "--paired", str(tmp_path / "dataset_flickr30k.json"), "--device", "cpu",
                 "--fold-size", str(len(test) // 2)]) == 0
    assert "student:" in capsys.readouterr().out
    out = json.loads((run_dir / "eval-dataset_flickr30k-test.json").read_text())
    assert out["split"]["images"] == len(test)
    assert out["student"]["rsum"] == pytest.approx(metrics["retrieval"]["student"]["rsum"], abs=1e-6)
    assert out["teacher"]["rsum"] == pytest.approx(metrics["retrieval"]["teacher_finetuned"]["rsum"], abs=1e-6)
    assert out["student"]["folds"]["n_folds"] == 2


def test_missing_run_dir_is_one_line(tmp_path, capsys):
    (tmp_path / "d.json").write_text(json.dumps({"images": []}))
    assert main(["--run-dir", str(tmp_path / "nope"), "--paired", str(tmp_path / "d.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
