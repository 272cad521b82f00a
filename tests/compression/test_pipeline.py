"""End-to-end on a tiny config: every phase, the run directory's contents, resume after an interrupt."""
import json

import pytest
import torch

from compression import pipeline, stages
from compression.checkpoint import CheckpointError, load_student
from compression.pipeline import RunDirError, load_teacher, planned_phases, run_pipeline
from compression.run import main


def test_run_dir_is_complete_and_self_describing(tiny_run):
    cfg, root, _ = tiny_run
    run_dir = root / "runs" / "tiny"
    for name in ("student.safetensors", "student.json", "teacher.safetensors", "teacher.json", "metrics.json", "report.md", "state.json"):
        assert (run_dir / name).is_file(), name
    state = json.loads((run_dir / "state.json").read_text())
    assert state["done"] == planned_phases(cfg)
    assert not list((run_dir / "checkpoints").glob("*.partial.pt"))
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert set(on_disk["retrieval"]) >= {"teacher_zero_shot", "teacher_finetuned", "student", "student_untrained"}
    for r in on_disk["retrieval"].values():
        assert 0 <= r["t2i_R@1"] <= r["t2i_R@5"] <= r["t2i_R@10"] <= 100
    assert on_disk["sizes"]["student_image"]["params"] < on_disk["sizes"]["teacher_image"]["params"]
    assert on_disk["speed"]["items_per_s"]["student_image"] > 0
    report = (run_dir / "report.md").read_text()
    assert "teacher, fine-tuned" in report and "student (this run)" in report and "RSUM" in report


def test_run_dir_carries_its_tokenizer_file(tiny_run):
    """A run directory is self-contained: the BPE merges its student.json names are next to it, and
    open_clip's tokenizer built from that file gives the training tokenizer's ids."""
    from open_clip.tokenizer import SimpleTokenizer

    from compression.models.teacher import build_tokenizer
    from formats.run_card import read_run_card
    from formats.tokenizer_files import BPE, BPE_FILE

    run_dir = tiny_run[1] / "runs" / "tiny"
    card = read_run_card(run_dir)
    files = card.tokenizer_files()
    assert (files.kind, files.vocabulary) == (BPE, run_dir / BPE_FILE)
    tok = card.tokenizer()
    texts = ["a red circle to the left of a blue box", "", "Ünïcode & émoji 🙂"]
    carried = SimpleTokenizer(bpe_path=str(files.vocabulary), context_length=tok["context_length"])
    assert (carried(texts) == build_tokenizer(tok["model"], tok["context_length"])(texts)).all()


def test_student_checkpoint_rebuilds_alone(tiny_run):
    cfg, root, metrics = tiny_run
    run_dir = root / "runs" / "tiny"
    student, meta = load_student(run_dir)
    assert meta["preprocess"]["image_size"] == 32
    assert meta["tokenizer"]["context_length"] == 32
    # re-evaluating the reloaded student reproduces the recorded test metrics
    from compression.data.loading import load_datasets
    from compression.data.transforms import image_transform
    from compression.models.teacher import Preprocess, build_tokenizer
    from compression.stages import PhaseContext

    data = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False)
    pre = meta["preprocess"]
    ctx = PhaseContext(
        transform=image_transform(Preprocess(pre["image_size"], tuple(pre["mean"]), tuple(pre["std"]))),
        tokenizer=build_tokenizer(meta["tokenizer"]["model"], 32), device=torch.device("cpu"), seed=0, checkpoint=None,
    )
    again = pipeline.evaluate_model(student, data.test, ctx, cfg.eval.ks, batch_size=32)
    assert again["rsum"] == pytest.approx(metrics["retrieval"]["student"]["rsum"], abs=1e-6)
    teacher = load_teacher(run_dir)
    again_t = pipeline.evaluate_model(teacher, data.test, ctx, cfg.eval.ks, batch_size=32)
    assert again_t["rsum"] == pytest.approx(metrics["retrieval"]["teacher_finetuned"]["rsum"], abs=1e-6)


def test_rerun_skips_finished_phases(tiny_run, monkeypatch):
    cfg, root, metrics = tiny_run

    def boom(*a, **k):
        raise AssertionError("a finished phase ran again")

    monkeypatch.setattr(pipeline, "stage2_student", boom)
    monkeypatch.setattr(pipeline, "train_clip", boom)
    again = run_pipeline(cfg, root / "runs" / "tiny", root / "cache", progress=False)
    assert again["retrieval"]["student"] == metrics["retrieval"]["student"]


def test_other_config_in_same_dir_refused(tiny_run):
    cfg, root, _ = tiny_run
    cfg2 = type(cfg)(**{**cfg.__dict__, "seed": 1})
    with pytest.raises(RunDirError, match="different config"):
        run_pipeline(cfg2, root / "runs" / "tiny", root / "cache", progress=False)


def test_interrupt_then_resume_gives_the_same_student(tiny_run, tmp_path, monkeypatch):
    """Kill the run in the middle of stage 2 (after an epoch checkpoint), resume, compare with uninterrupted."""
    cfg, root, metrics = tiny_run
    real = stages.train_phase
    calls = {"n": 0}

    def interrupting(name, module, opt, *args, **kw):
        if name == "stage2-image" and calls["n"] == 0:
            calls["n"] += 1
            opt1 = type(opt)(**opt.__dict__)
            # run the real loop but stop it at the start of the second epoch
            orig_start = kw.get("on_epoch_start")

            def stop(epoch):
                if epoch == 1:
                    raise KeyboardInterrupt
                if orig_start:
                    orig_start(epoch)

            kw["on_epoch_start"] = stop
            return real(name, module, opt1, *args, **kw)
        return real(name, module, opt, *args, **kw)

    monkeypatch.setattr(stages, "train_phase", interrupting)
    run_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, run_dir, root / "cache", progress=False)
    state = json.loads((run_dir / "state.json").read_text())
    assert "stage2-image" not in state["done"] and "teacher-ft-text" in state["done"]
    assert (run_dir / "checkpoints" / "stage2-image.partial.pt").is_file()
    resumed = run_pipeline(cfg, run_dir, root / "cache", progress=False)
    assert calls["n"] == 1
    for key in ("student", "teacher_finetuned"):
        assert resumed["retrieval"][key]["rsum"] == pytest.approx(metrics["retrieval"][key]["rsum"], abs=1e-6)


def test_main_cli_errors_are_messages(tmp_path, capsys):
    assert main(["--set", "stage2.kd_wieght=0", "--runs-dir", str(tmp_path)]) == 2
    assert "unknown config key 'stage2.kd_wieght'" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_load_student_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_student(tmp_path / "nope")
    (tmp_path / "student.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="student.json is not valid JSON"):
        load_student(tmp_path)
