"""The ablation command: variants reuse the full run's shared phases and differ only where ablated."""
import json

from compression.ablation import VARIANTS, main, slug


def test_ablation_reuses_shared_phases(tmp_path, tiny_overrides, capsys):
    args = ["--out", str(tmp_path / "abl"), "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--variants", "w/o KD", "w/o HN"]
    for o in tiny_overrides:
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    for row in ("full recipe", "w/o KD", "w/o HN"):
        assert f"| {row} |" in out
    full = json.loads((tmp_path / "runs" / "synthetic" / "state.json").read_text())
    no_kd = json.loads((tmp_path / "abl" / slug("w/o KD") / "state.json").read_text())
    shared = VARIANTS["w/o KD"][1]
    # shared phases were copied, not re-run: their recorded durations are the full run's
    assert {k: no_kd["seconds"][k] for k in shared} == {k: full["seconds"][k] for k in shared}
    assert {"kd_loss", "distill_loss"} <= set(full["metrics"]["losses"]["stage2-image"])
    # the paper's "w/o KD" removes both distillation terms, the matching KD and the contrastive one
    assert not {"kd_loss", "distill_loss"} & set(no_kd["metrics"]["losses"]["stage2-image"])
    results = json.loads((tmp_path / "abl" / "results.json").read_text())
    assert set(results) == {"full recipe", "w/o KD", "w/o HN"}


def test_every_variant_changes_the_config():
    from compression.config import config_digest, load_config

    digests = {config_digest(load_config(None, o)) for o, _ in VARIANTS.values()}
    assert len(digests) == len(VARIANTS)


def test_without_sequential_changes_only_the_student():
    """The paper's "w/o sequential" trains the student towers jointly; the teacher is fine-tuned as in the full recipe."""
    from compression.config import load_config
    from compression.pipeline import planned_phases

    full = planned_phases(load_config(None, VARIANTS["full recipe"][0]))
    joint = planned_phases(load_config(None, VARIANTS["w/o sequential"][0]))
    assert [p for p in joint if p.startswith("teacher-")] == [p for p in full if p.startswith("teacher-")]
    assert [p for p in joint if p.startswith("stage2-")] == ["stage2-joint"]


def test_image_encoder_ablation_keeps_the_teachers_text_tower(tiny_run, tmp_path, tiny_overrides):
    """The paper's image-encoder comparison: text fixed to the fine-tuned teacher's, only the image tower trained."""
    import torch

    from compression.checkpoint import load_student
    from compression.config import load_config
    from compression.pipeline import load_teacher, planned_phases, run_pipeline

    cfg = load_config(None, tiny_overrides + VARIANTS["text = teacher's"][0])
    assert planned_phases(cfg) == ["stage1-image", "teacher-ft-image", "teacher-ft-text", "stage2-image"]
    run_pipeline(cfg, tmp_path / "run", tiny_run[1] / "cache", progress=False)
    student, _ = load_student(tmp_path / "run")
    teacher = load_teacher(tmp_path / "run")
    tokens = torch.randint(1, 100, (3, 8))
    tokens[:, -1] = teacher.token_embedding.num_embeddings - 1  # EOT
    with torch.no_grad():
        torch.testing.assert_close(student.encode_text(tokens), teacher.encode_text(torch.nn.functional.pad(tokens, (0, 24))))
