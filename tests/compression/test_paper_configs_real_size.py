"""Both paper configs, every phase, at the real model sizes (ViT-B/32 teacher, ViT-S/16 student, 224 px)
with random weights on the CPU: a handful of steps at batch 4 on a few generated JPEGs (each phase 1-2
steps an epoch; the student phases 2 epochs, so that one is selected by validation RSUM).

The weights go through the real loading code from local files (what `--set teacher.pretrained=/path`
and `--set student.image_pretrained=/path` do offline); open_clip's download of the 'openai' tag is
pointed at the local file, so the tag's route (QuickGELU architecture, OpenAI preprocessing) is the
one taken. Slow: see the README's test-time note (about 100 s of CPU per config).
"""
import json
import math
import shutil

import numpy as np
import open_clip
import pytest
import timm
import torch
from open_clip.transformer import QuickGELU
from PIL import Image
from safetensors.torch import save_file

from compression.checkpoint import load_student
from compression.config import load_config
from compression.pipeline import load_teacher, planned_phases
from compression.run import main

STUDENT = "vit_small_patch16_224.augreg_in21k"
SMALL_RUN = [
    "num_workers=0",
    "stage1.image.batch_size=4", "stage1.text.batch_size=4",
    "stage2.teacher.batch_size=4", "stage2.student_image.batch_size=4", "stage2.student_text.batch_size=4",
    "stage2.student_image.epochs=2", "stage2.student_text.epochs=2", "stage2.teacher.epochs=1",
    "stage2.hard_negatives=2", "stage2.hard_negative_pool=2",
    "eval.batch_size=8", "eval.speed_batch_size=2", "eval.speed_iters=1",
]


def write_data(root):
    """A Karpathy JSON (4 train images with 2 captions each, 3 val, 3 test), a CC3M-like folder of 4 JPEGs
    (plus one truncated download, skipped and counted) and 4 sentences."""
    rng = np.random.default_rng(0)
    words = ["a dog", "two cats", "a red car", "a bowl of fruit", "people on a beach", "a city street at night"]

    def jpeg(path, i):
        pixels = rng.integers(0, 255, size=(200 + 8 * i, 240, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=80)

    (root / "coco").mkdir()
    entries = []
    for i, split in enumerate(["train"] * 4 + ["val"] * 3 + ["test"] * 3):
        jpeg(root / "coco" / f"{i}.jpg", i)
        caps = [f"{words[i % 6]} number {i}", f"a photo of {words[(i + 1) % 6]}"]
        entries.append({"filename": f"{i}.jpg", "split": split, "sentences": [{"raw": c} for c in caps]})
    (root / "coco" / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    (root / "cc3m").mkdir()
    for i in range(4):
        jpeg(root / "cc3m" / f"{i}.jpg", i)
    whole = (root / "cc3m" / "0.jpg").read_bytes()
    (root / "cc3m" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "cc3m.txt").write_text("\n".join(f"{w} in the sun" for w in words[:4]) + "\n")
    return [
        f"data.paired={root / 'coco' / 'dataset_coco.json'}", f"data.image_root={root / 'coco'}",
        f"data.unpaired_images={root / 'cc3m'}", f"data.unpaired_texts={root / 'cc3m.txt'}",
    ]


@pytest.fixture(scope="module")
def local_weights(tmp_path_factory):
    """Random weights of the paper's teacher and student, saved as files the way they are downloaded."""
    root = tmp_path_factory.mktemp("weights")
    teacher = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, load_weights=False)
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(root / "open_clip_model.safetensors"))
    student = timm.create_model(STUDENT, pretrained=False)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(root / "model.safetensors"))
    return root / "open_clip_model.safetensors", root / "model.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("config, text_layers", [("paper-vitb32-vits16-text6", 6), ("paper-vitb32-vits16-text4", 4)])
def test_paper_config_runs_every_phase_at_real_size(config, text_layers, local_weights, tmp_path, monkeypatch, capsys, caplog):
    teacher_file, student_file = local_weights
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, **kw: str(teacher_file))
    overrides = write_data(tmp_path) + SMALL_RUN + [f"student.image_pretrained={student_file}"]
    args = ["--config", config, "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0, capsys.readouterr().err
    # the teacher is built once, with its weights (no 151M-parameter probe logging "No pretrained weights loaded")
    assert not [r for r in caplog.records if "No pretrained weights loaded" in r.getMessage()]
    run_dir = tmp_path / "runs" / config
    cfg = load_config(config, overrides)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["done"] == planned_phases(cfg) and len(state["done"]) == 6
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for phase, losses in metrics["losses"].items():
        assert all(math.isfinite(v) for v in losses.values()), phase
    # the teacher is OpenAI's network: QuickGELU in every block, also once rebuilt from the run directory
    teacher = load_teacher(run_dir)
    for blocks in (teacher.visual.transformer.resblocks, teacher.transformer.resblocks):
        assert {type(b.mlp.gelu) for b in blocks} == {QuickGELU}
    # each tower its own preprocessing; the student's is the one the export and the app read
    student, meta = load_student(run_dir)
    assert meta["preprocess"] == {**meta["preprocess"], "image_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3}
    teacher_pre = json.loads((run_dir / "teacher.json").read_text())["preprocess"]
    assert teacher_pre["mean"] == pytest.approx(list(open_clip.OPENAI_DATASET_MEAN))
    assert student.text.arch["act"] == "quick_gelu" and len(student.text.resblocks) == text_layers
    with torch.no_grad():
        assert student.encode_image(torch.randn(2, 3, 224, 224)).shape == (2, 512)
        assert student.encode_text(torch.randint(0, 49407, (2, 77))).shape == (2, 512)
    # the evaluated student is the best validation epoch of the last phase
    last = metrics["losses"]["stage2-text"]
    assert last["selected_epoch"] in (1, 2)
    assert last["val_score"] == pytest.approx(metrics["retrieval"]["student_val"]["rsum"], abs=1e-6)
    assert metrics["test_split"] == {"images": 3, "captions": 6}
    shutil.rmtree(tmp_path / "runs")  # ~2 GB of teacher weights and checkpoints
