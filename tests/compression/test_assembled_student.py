"""The MoTIS student of the assembled teacher: layer selection, and the clipart config end to end on fixture clip art."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from compression import clipart_pipeline
from compression.data.openclipart import split_of
from compression.models.assembled import SharedEncoder, SharedEncoderConfig
from compression.models.assembled_student import shrink_bert, shrink_shared
from compression.models.pretrained_towers import create_minilm
from compression.run import main
from tests.compression.clipart_fixture import write_drawing

WORDS = ["red", "blue", "green", "apple", "house", "tree", "boat", "car", "dog", "cat", "bird", "flower"]


def test_three_of_six_minilm_layers_keep_first_and_last_with_their_weights():
    bert = create_minilm().model
    small = shrink_bert(bert, [0, 3, 5])
    assert len(small.encoder.layer) == 3 and small.config.num_hidden_layers == 3
    assert len(bert.encoder.layer) == 6  # the teacher keeps its layers
    for mine, theirs in zip(small.encoder.layer, [0, 3, 5]):
        for (k, a), (_, b) in zip(mine.state_dict().items(), bert.encoder.layer[theirs].state_dict().items()):
            torch.testing.assert_close(a, b, msg=k)
    torch.testing.assert_close(small.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    with torch.no_grad():  # copies, not shared tensors: training the student leaves the teacher alone
        small.encoder.layer[0].attention.self.query.weight.add_(1.0)
    assert not torch.equal(small.encoder.layer[0].attention.self.query.weight, bert.encoder.layer[0].attention.self.query.weight)


def test_shared_part_keeps_the_last_layer_and_every_other_weight():
    torch.manual_seed(0)
    teacher = SharedEncoder(SharedEncoderConfig(image_dim=16, text_dim=8, width=8, layers=2, heads=2, embed_dim=4))
    small = shrink_shared(teacher, 1)
    t, s = teacher.state_dict(), small.state_dict()
    assert len(small.layers.layers) == 1
    for k, v in s.items():
        src = k.replace("layers.layers.0.", "layers.layers.1.") if k.startswith("layers.layers.") else k
        torch.testing.assert_close(v, t[src], msg=k)


@pytest.fixture(scope="module")
def clipart(tmp_path_factory):
    root = tmp_path_factory.mktemp("clipart")
    per_split = {"train": 0, "val": 0, "test": 0}
    i = 0
    while min(per_split.values()) < 3 or per_split["train"] < 12:
        a, b = WORDS[i % len(WORDS)], WORDS[(i * 5 + 3) % len(WORDS)]
        png = write_drawing(root, f"things/{a}_{b}_{i}", f"{a} {b}", ["thing"], colour=(i * 37 % 256, i * 11 % 256, 90), size=24)
        per_split[split_of(hashlib.sha1(png.read_bytes()).hexdigest())] += 1
        i += 1
    return root


def _tiny(epochs: int) -> list[str]:
    sets = {"real_photos": False, "decode_workers": 1, "onnx_features": False, "teacher.width": 32, "teacher.heads": 2,
            "teacher.embed_dim": 16, "teacher.epochs": 2, "teacher.batch_size": 4, "stage2.hard_negatives": 1,
            "stage2.hard_negative_pool": 2, "teacher.conse_weight": 0.7,
            "stage1_synthetic": 4}
    for phase in clipart_pipeline.PHASES:
        sets |= {f"{phase}.epochs": epochs, f"{phase}.batch_size": 4, f"{phase}.warmup_steps": 2}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_clipart_config_trains_end_to_end_and_beats_the_untrained_student(clipart, tmp_path, monkeypatch, capsys):
    # 1000 ImageNet class names through MiniLM take a minute on a busy CPU: three stand in for them in stage 1
    # (the student's ConSE channel still embeds all 1000 with its 3 layers, as it must to mix Lite0's logits)
    monkeypatch.setattr(clipart_pipeline, "imagenet_class_names", lambda: ["tabby cat", "sports car", "daisy"])
    monkeypatch.setattr(clipart_pipeline, "class_name_token_states",
                        lambda text: (torch.randn(3, 4, 384), torch.ones(3, 4, dtype=torch.bool)))
    monkeypatch.setattr(clipart_pipeline, "cached_class_name_embeddings",
                        lambda cache, text: torch.nn.functional.normalize(
                            torch.randn(1000, 384, generator=torch.Generator().manual_seed(0)), dim=-1))  # global RNG untouched
    common = ["--config", "clipart", "--set", f"clipart_root={clipart}", "--cache-dir", str(tmp_path / "cache"),
              "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main([*common, "--name", "untrained", *_tiny(0)]) == 0
    assert main([*common, "--name", "trained", *_tiny(3)]) == 0
    out = capsys.readouterr().out
    assert "student RSUM" in out and "| test | student |" in out
    untrained = json.loads((tmp_path / "runs" / "untrained" / "metrics.json").read_text())
    trained = json.loads((tmp_path / "runs" / "trained" / "metrics.json").read_text())
    before, after = untrained["student_fit"]["train"], trained["student_fit"]["train"]
    assert after["rsum"] > before["rsum"]  # recall on the pairs it was trained on
    # its image tower (Lite0 tokens through the teacher's shared layers at first) learnt to point at the teacher's embeddings
    assert after["image_teacher_top1"] > before["image_teacher_top1"]
    run = tmp_path / "runs" / "trained"
    # stage 1's image stream had augmented views of the drawings and synthetic scenes (features cached for both towers)
    cached = {p.name.split("-")[0] for p in (tmp_path / "cache" / "assembled").glob("*-efficientnet_lite0-*.pt")}
    assert {"augmented", "synthetic"} <= cached
    assert {p.stem for p in (run / "phases").glob("*.safetensors")} == set(clipart_pipeline.PHASES)
    card = json.loads((run / "student.json").read_text())
    assert card["tokenizer"]["kind"] == "wordpiece" and (run / card["tokenizer"]["vocab"]).is_file()
    assert card["text_layers"] == 3 and card["shared_layers"] == 1
    # the student ships with its ConSE channel: joint space (16) + the text tower's width (384)
    assert card["conse"] == {"weight": 0.7, "top": 10, "classes": 1000} and card["embed_dim"] == 16 + 384
    assert trained["conse_channel"]["weight"] == 0.7 and set(trained["results"]["test"]) >= {
        "assembled teacher", "assembled teacher, joint space", "student", "student, joint space"}

    def no_training(*a, **k):
        raise AssertionError("finished phases must not train again")

    monkeypatch.setattr(clipart_pipeline, "stage2", no_training)  # a second run resumes: nothing retrains
    monkeypatch.setattr(clipart_pipeline, "train_shared", no_training)
    assert main([*common, "--name", "trained", *_tiny(3)]) == 0


def test_pixels_path_equals_the_cached_onnx_feature_path(tmp_path):
    """Training reads Lite0 grid tokens computed by ONNX Runtime; the exported student runs the eager tower."""
    from compression.assembled_features import OnnxFeatureMap
    from compression.models.assembled import image_grid_tokens
    from compression.models.assembled_student import AssembledStudent, AssembledStudentConfig
    from compression.models.pretrained_towers import create_efficientnet_lite

    torch.manual_seed(0)
    lite0 = create_efficientnet_lite("efficientnet_lite0")
    shared = SharedEncoder(SharedEncoderConfig(width=32, layers=1, heads=2, embed_dim=16)).eval()
    student = AssembledStudent(lite0, torch.nn.Identity(), None, shared, AssembledStudentConfig()).eval()
    images = torch.rand(3, 3, 224, 224) * 2 - 1
    onnx = OnnxFeatureMap(lite0, 224, tmp_path / "lite0.onnx")
    with torch.no_grad():
        cached = student.embed_image_tokens(image_grid_tokens(onnx(images), 3))
        torch.testing.assert_close(student.encode_image(images, normalize=True), cached, atol=1e-4, rtol=1e-4)


def test_assembled_student_is_rebuilt_from_its_run_folder_alone(tmp_path):
    from compression.models.assembled_student import load_assembled_student
    from tests.compression.assembled_fixture import write_tiny_assembled_run

    saved = write_tiny_assembled_run(tmp_path)
    loaded, meta = load_assembled_student(tmp_path)
    assert meta["tokenizer"]["kind"] == "wordpiece" and not loaded.training
    assert loaded.tokenizer("a red apple")["input_ids"] == [101, 1037, 2417, 6207, 102]  # MiniLM's vocabulary
    images = torch.rand(2, 3, 224, 224) * 2 - 1
    ids = saved.tokenizer(["a red apple", "two dogs on a boat"], padding="max_length", max_length=16,
                          return_tensors="pt")["input_ids"]
    torch.testing.assert_close(loaded.tokenizer(["a red apple", "two dogs on a boat"], padding="max_length",
                                                max_length=16, return_tensors="pt")["input_ids"], ids)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images, normalize=True), saved.encode_image(images, normalize=True))
        torch.testing.assert_close(loaded.encode_text(ids, normalize=True), saved.encode_text(ids, normalize=True))
