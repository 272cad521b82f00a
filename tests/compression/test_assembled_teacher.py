"""The assembled teacher and ConSE end to end on fixture clip art, with the real pretrained towers."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from compression import assembled_features, conse
from compression.assembled_teacher import main
from compression.assembled_training import LogitScale, embed_features
from compression.checkpoint import load_weights
from compression.conse import conse_embeddings
from compression.data.openclipart import load_openclipart, split_of
from compression.data.transforms import image_transform
from compression.models.assembled import AssembledTeacher, SharedEncoder, SharedEncoderConfig
from compression.models.pretrained_towers import create_efficientnet_lite, create_minilm
from tests.compression.clipart_fixture import write_drawing

WORDS = ["red", "blue", "green", "apple", "house", "tree", "boat", "car", "dog", "cat", "bird", "flower", "star", "moon", "sun", "fish", "chair", "lamp", "book", "cup"]


@pytest.fixture(scope="module")
def clipart(tmp_path_factory):
    """Fixture drawings with distinct English titles, enough that every split has at least 2."""
    root = tmp_path_factory.mktemp("clipart")
    per_split = {"train": 0, "val": 0, "test": 0}
    i = 0
    while min(per_split.values()) < 2 or per_split["train"] < 8:
        a, b = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)]
        png = write_drawing(root, f"things/{a}_{b}_{i}", f"{a} {b}", ["thing"], colour=(i * 37 % 256, i * 11 % 256, 90), size=24)
        per_split[split_of(hashlib.sha1(png.read_bytes()).hexdigest())] += 1
        i += 1
    return root


TINY = ["--image-tower", "efficientnet_lite0", "--epochs", "2", "--batch-size", "4", "--layers", "1", "--width", "64",
        "--heads", "2", "--embed-dim", "32", "--no-check", "--no-progress", "--json"]


def test_cli_trains_evaluates_and_reuses_cached_features(clipart, tmp_path, monkeypatch, capsys):
    # 1000 class names through MiniLM take a minute on a busy CPU; ConSE itself is tested below
    monkeypatch.setattr(conse, "class_name_embeddings", lambda text: torch.nn.functional.normalize(torch.randn(1000, 384), dim=-1))
    args = ["--clipart-root", str(clipart), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), *TINY]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    res = printed["results"]
    assert set(res) == {"val", "test"} and set(res["test"]) == {"ConSE (T=10)", "assembled teacher"}
    for m in res["test"].values():
        assert 0 <= m["t2i_R@1"] <= m["t2i_R@10"] <= 100 and m["rsum"] == pytest.approx(sum(v for k, v in m.items() if "R@" in k))
    assert len(printed["history"]) == 2
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.pt")) == ["imagenet", "test", "train", "val"]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    shared = SharedEncoder(SharedEncoderConfig(**cfg["shared"]))  # the run directory rebuilds the model
    load_weights(torch.nn.ModuleDict({"shared": shared, "logit_scale": LogitScale()}), tmp_path / "run" / "shared.safetensors")
    assert cfg["image_tower"] == "efficientnet_lite0" and shared.cfg.width == 64

    def no_recompute(*a, **k):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(assembled_features, "compute_features", no_recompute)
    assert main(args) == 0


def test_model_path_equals_cached_feature_path(clipart, tmp_path):
    """encode_image/encode_text on pixels and ids give what training and evaluation computed from the cache."""
    torch.manual_seed(0)
    corpus = load_openclipart(clipart)
    towers = (create_efficientnet_lite("efficientnet_lite0"), create_minilm())
    data = corpus.splits["test"]
    feats = assembled_features.cached_features(tmp_path, "test", data, towers, "efficientnet_lite0", 2, progress=False)
    shared = SharedEncoder(SharedEncoderConfig(image_grid=2, width=64, layers=1, heads=2, embed_dim=32)).eval()
    teacher = AssembledTeacher(towers[0], towers[1], shared)
    tf = image_transform(assembled_features.image_preprocess("efficientnet_lite0"))
    with torch.no_grad():
        img = teacher.encode_image(torch.stack([tf(data.images.load(i)) for i in range(len(data))]), normalize=True)
        txt = teacher.encode_text(teacher.tokenize([c[0] for c in data.captions]), normalize=True)
    cached_img, cached_txt = embed_features(shared, feats)
    torch.testing.assert_close(img, cached_img, atol=2e-2, rtol=0)  # the cache holds float16 tokens
    torch.testing.assert_close(txt, cached_txt, atol=2e-2, rtol=0)
    assert teacher.image_tower.training is False and not any(p.requires_grad for p in teacher.text_model.parameters())


def test_conse_is_the_probability_weighted_mean_of_top_class_embeddings():
    class_emb = torch.nn.functional.normalize(torch.randn(1000, 8), dim=-1)
    logits = torch.full((2, 1000), -50.0)
    logits[0, 3] = 10.0  # one confident class: the embedding is that class's
    logits[1, 5], logits[1, 7] = 2.0, 2.0  # two equally likely classes: their normalised mean
    out = conse_embeddings(logits, class_emb, top_t=2)
    torch.testing.assert_close(out[0], class_emb[3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.nn.functional.normalize(class_emb[5] + class_emb[7], dim=0), atol=1e-5, rtol=0)


def test_missing_clipart_is_one_line_naming_the_folder(tmp_path, capsys):
    assert main(["--clipart-root", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "none") in err and "apt-get install openclipart-png" in err


def test_class_name_pairs_only_for_images_the_classifier_is_sure_about():
    from compression.assembled_features import FrozenFeatures
    from compression.assembled_training import ClassNameTexts, batch_loss

    n = 4
    logits = torch.zeros(n, 1000)
    logits[:2, 7] = 20.0  # two confident images (class 7), two uniform ones
    feats = FrozenFeatures(torch.randn(n, 4, 16).half(), torch.randn(n, 16), logits, torch.randn(n, 5, 8).half(),
                           torch.ones(n, 5, dtype=torch.bool), torch.randn(n, 8), torch.arange(n))
    shared = SharedEncoder(SharedEncoderConfig(image_dim=16, text_dim=8, image_grid=2, width=16, layers=1, heads=2,
                                               embed_dim=8))
    names = ClassNameTexts(torch.randn(1000, 3, 8), torch.ones(1000, 3, dtype=torch.bool))
    terms = batch_loss(shared, LogitScale(), feats, torch.arange(n), 1.0, names, 1.0, min_prob=0.5)
    assert set(terms) == {"contrastive_loss", "distill_loss", "class_name_loss"} and torch.isfinite(terms["class_name_loss"])
    terms["class_name_loss"].backward()
    assert shared.text_in.weight.grad is not None
    logits[:2, 7] = 0.0  # nobody confident: no class-name term
    assert "class_name_loss" not in batch_loss(shared, LogitScale(), feats, torch.arange(n), 1.0, names, 1.0, 0.5)
