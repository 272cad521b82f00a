"""What the paper's recipe needs of the code: the right teacher network, per-tower preprocessing,
best-validation selection, one-line failures for missing weights, and what scale demands."""
import json
import pickle

import open_clip
import pytest
import timm
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file
from torch import nn

from compression import report
from compression.config import OptimConfig
from compression.data.transforms import image_transform
from compression.models.student import backbone_preprocess, create_backbone, create_student
from compression.models.teacher import Preprocess, create_teacher, resolve_teacher_name
from compression.models.weights import WeightsUnavailableError
from compression.run import main
from compression.trainer import train_phase

TINY_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.fixture
def openai_weights_offline(monkeypatch):
    """open_clip's download and checkpoint loading stubbed: the architecture is what is tested."""
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, **kw: "stub.pt")
    monkeypatch.setattr(open_clip.factory, "load_checkpoint", lambda model, path, **kw: None)


def activations(blocks: nn.ModuleList) -> set[type]:
    return {type(block.mlp.gelu) for block in blocks}


def test_openai_teacher_uses_quickgelu_in_every_block(openai_weights_offline):
    """OpenAI's CLIP was trained with QuickGELU; open_clip's ViT-B-32 config builds nn.GELU (issue #771)."""
    assert resolve_teacher_name("ViT-B-32", "openai") == "ViT-B-32-quickgelu"
    teacher = create_teacher("ViT-B-32", "openai")
    assert activations(teacher.visual.transformer.resblocks) == {QuickGELU}
    assert activations(teacher.transformer.resblocks) == {QuickGELU}
    student = create_student(teacher, "vit_tiny_patch16_224", 2, image_backbone_kwargs=TINY_VIT)
    assert student.text.arch["act"] == "quick_gelu"
    assert activations(student.text.resblocks) == {QuickGELU}


def test_teacher_without_quickgelu_weights_keeps_its_config():
    assert resolve_teacher_name("ViT-B-32", None) == "ViT-B-32"
    assert resolve_teacher_name("ViT-B-32", "laion2b_s34b_b79k") == "ViT-B-32"
    assert resolve_teacher_name("synthclip-tiny", None) == "synthclip-tiny"


def test_teacher_that_cannot_be_fetched_is_one_line(monkeypatch, tmp_path, capsys):
    def offline(cfg, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(WeightsUnavailableError, match=r"--set teacher.pretrained=/path"):
        create_teacher("ViT-B-32", "openai")
    # the CLI: one line, before any data is read (the config's data paths do not exist here)
    assert main(["--config", "paper-vitb32-vits16-text6", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "teacher weights ViT-B-32-quickgelu/openai could not be fetched" in err and "teacher.pretrained=" in err


def test_student_weights_that_cannot_be_fetched_are_one_line(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*a, **kw):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    with pytest.raises(WeightsUnavailableError, match=r"student image weights .* --set student.image_pretrained=/path"):
        create_backbone("vit_small_patch16_224.augreg_in21k", True)
    with pytest.raises(WeightsUnavailableError, match="student.image_pretrained: weights file"):
        create_backbone("vit_small_patch16_224", "/no/such/file.safetensors")


def test_student_weights_from_a_local_file(tmp_path):
    source = timm.create_model("vit_tiny_patch16_224", num_classes=0, **TINY_VIT)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_backbone("vit_tiny_patch16_224", str(path), TINY_VIT)
    torch.testing.assert_close(loaded.state_dict(), source.state_dict())


def test_backbone_preprocessing_is_its_pretrained_cfg():
    in21k = backbone_preprocess(create_backbone("vit_small_patch16_224.augreg_in21k"))
    assert (in21k.image_size, in21k.mean, in21k.std) == (224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    mnv4 = backbone_preprocess(create_backbone("mobilenetv4_conv_medium.e500_r224_in1k"))
    assert mnv4.mean == pytest.approx(timm.data.IMAGENET_DEFAULT_MEAN) and mnv4.image_size == 224


def test_pretrained_student_gets_its_own_preprocessing_in_the_run_dir(tmp_path, tiny_overrides, tiny_run):
    """Teacher and student towers each get their backbone's preprocessing; student.json (what export and
    the app read) carries the student's. Before, both got the teacher's (CLIP mean/std)."""
    from compression.config import load_config
    from compression.pipeline import run_pipeline

    kwargs = dict(TINY_VIT)
    source = timm.create_model("vit_tiny_patch16_224", num_classes=0, **kwargs)
    path = tmp_path / "student-init.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    cfg = load_config(None, tiny_overrides + [f"student.image_pretrained={path}", "stage2.student_image.epochs=1"])
    run_pipeline(cfg, tmp_path / "run", tiny_run[1] / "cache", progress=False)  # tiny_run's data and teacher
    student_meta = json.loads((tmp_path / "run" / "student.json").read_text())
    teacher_meta = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert student_meta["preprocess"]["mean"] == [0.5, 0.5, 0.5] and student_meta["preprocess"]["image_size"] == 32
    assert teacher_meta["preprocess"]["mean"] == pytest.approx(list(open_clip.OPENAI_DATASET_MEAN))


def test_best_validation_epoch_is_kept():
    """Selection by validation score: the weights of the best epoch (here the 2nd of 4) are the result."""
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    x = torch.randn(16, 4)
    snapshots, scores = [], iter([1.0, 3.0, 2.0, 0.5])

    def score() -> float:
        snapshots.append(model.weight.detach().clone())
        return next(scores)

    out = train_phase(
        "toy", model, OptimConfig(epochs=4, batch_size=8, lr=0.1, warmup_steps=1), 16,
        lambda batches: (torch.from_numpy(b) for b in batches),
        lambda idx: {"y": model(x[idx])}, lambda f: {"toy_loss": f["y"].pow(2).mean()},
        checkpoint=None, seed=0, progress=False, score_fn=score,
    )
    assert out["selected_epoch"] == 2 and out["val_score"] == 3.0
    torch.testing.assert_close(model.weight, snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[3])


def test_the_evaluated_student_is_the_best_validation_epoch(tiny_run):
    """The run reports the student of the best validation epoch: the last phase's selected score is
    the validation RSUM of the student that was evaluated (before, student_val was computed and unused)."""
    _, _, metrics = tiny_run
    last = metrics["losses"]["stage2-text"]
    assert 1 <= last["selected_epoch"] <= 1  # the tiny config's text phase has 1 epoch
    assert last["val_score"] == pytest.approx(metrics["retrieval"]["student_val"]["rsum"], abs=1e-6)
    image_phase = metrics["losses"]["stage2-image"]
    assert 1 <= image_phase["selected_epoch"] <= 2 and "val_score" in image_phase


def test_partial_checkpoint_holds_only_what_the_phase_trains(tmp_path):
    """A phase that trains one tower checkpoints that tower (and the optimizer); the frozen rest is
    already on disk. Before, the whole module went into every epoch's checkpoint."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[0].requires_grad_(False)
    x = torch.randn(8, 4)
    ckpt = tmp_path / "phase.partial.pt"
    train_phase(
        "toy", model, OptimConfig(epochs=1, batch_size=4, lr=0.1, warmup_steps=1), 8,
        lambda batches: (torch.from_numpy(b) for b in batches),
        lambda idx: {"y": model(x[idx])}, lambda f: {"toy_loss": f["y"].pow(2).mean()},
        checkpoint=ckpt, seed=0, progress=False,
    )
    saved = torch.load(ckpt, weights_only=False)
    assert set(saved["module"]) == {"1.weight", "1.bias"}


def test_image_transform_pickles():
    """DataLoader workers started with spawn (macOS, Python >= 3.14) pickle the transform."""
    transform = image_transform(Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    clone = pickle.loads(pickle.dumps(transform))
    from PIL import Image

    im = Image.new("L", (40, 30), 128)
    torch.testing.assert_close(clone(im), transform(im))


def test_speed_timing_waits_for_the_device(monkeypatch):
    """CUDA kernels run asynchronously: the clock must be read after a synchronize, or it times launches."""
    calls = []
    monkeypatch.setattr(report, "synchronize", lambda device: calls.append(device))
    rate = report._throughput(lambda x: x * 2, torch.ones(4, 3), iters=2)
    assert rate > 0 and len(calls) == 2


def test_final_weights_are_not_written_twice(tiny_run):
    """The run directory's student and teacher weights are the last phases' files, linked, not a second copy
    (a ViT-B/32 teacher is 600 MB a copy)."""
    _, root, _ = tiny_run
    run_dir = root / "runs" / "tiny"
    state = json.loads((run_dir / "state.json").read_text())
    assert (run_dir / "student.safetensors").samefile(run_dir / state["student_file"])
    assert (run_dir / "teacher.safetensors").samefile(run_dir / state["teacher_file"])


def test_disk_size_is_measured_without_writing_a_file(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = nn.Linear(100, 10)
    size = report.disk_mb(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    assert size == (tmp_path / "m.safetensors").stat().st_size / 1e6
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
