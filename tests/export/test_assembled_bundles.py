"""The assembled student (--config clipart) as ONNX and ExecuTorch bundles: export, then index and search through the engine."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from app.engine.__main__ import main as engine_main
from app.engine.decode import preprocess_image
from app.engine.runtimes.bundle import read_bundle
from export.onnx import main as export_main
from formats.manifest import verify_bundle
from tests.compression.assembled_fixture import write_tiny_assembled_run

CAPTIONS = ["a red apple on a table", "Two DOGS running in the park!", "a small boat at sea, café"]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 220), (240, 240, 30)]


@pytest.fixture(scope="module")
def assembled_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("assembled")
    student = write_tiny_assembled_run(root / "run")
    assert export_main(["--checkpoint", str(root / "run"), "--out", str(root / "bundle"), "--log-level", "WARNING"]) == 0
    return student, root / "bundle"


def test_manifest_names_the_wordpiece_tokenizer_and_records_parity(assembled_bundle):
    _, bundle = assembled_bundle
    manifest = verify_bundle(bundle)
    assert manifest["tokenizer"]["kind"] == "wordpiece" and manifest["tokenizer"]["vocab"] in manifest["files"]
    assert manifest["text"]["lengths"] == {"kind": "range", "min": 2, "max": 64}
    assert manifest["parity"]["status"] == "passed" and min(manifest["parity"]["cos_min"].values()) >= 0.99999


def test_engine_tokenizer_equals_hugging_face_for_the_bundle(assembled_bundle):
    student, bundle = assembled_bundle
    tokenizer = read_bundle(bundle).tokenizer
    texts = [*CAPTIONS, "Ünïcödé 東京 emoji 🙂 [SEP] x", "word " * 100]
    want = student.tokenizer(texts, padding="max_length", truncation=True, max_length=64, return_tensors="np")
    np.testing.assert_array_equal(tokenizer(texts), want["input_ids"])
    ids = tokenizer.encode_query("a red apple")
    assert ids.tolist() == [[101, 1037, 2417, 6207, 102]]


@pytest.mark.parametrize("model", ["bundle", "run"])
def test_engine_indexes_and_finds_the_photo_pytorch_ranks_first(assembled_bundle, model, tmp_path, capsys):
    """The ONNX bundle, and the run directory itself (the desktop's PyTorch runtime: `python -m app` and
    `app.engine` find runs/offline there before anything is exported; it could not load clip art runs)."""
    student, bundle = assembled_bundle
    model_path = bundle if model == "bundle" else bundle.parent / "run"
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for i, colour in enumerate(COLOURS):
        img = Image.new("RGB", (64, 48), colour)
        img.paste((255 - colour[0], i * 60, 128), (8 * i, 8, 8 * i + 20, 30))
        img.save(gallery / f"photo{i}.png")
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(model_path)]
    assert engine_main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    capsys.readouterr()
    pre = read_bundle(bundle).preprocess
    paths = sorted(gallery.glob("*.png"))
    pixels = torch.from_numpy(np.stack([preprocess_image(Image.open(p), pre) for p in paths]))
    with torch.no_grad():
        images = student.encode_image(pixels, normalize=True)
        for caption in CAPTIONS:
            ids = student.tokenizer([caption], return_tensors="pt")["input_ids"]
            scores = (student.encode_text(ids, normalize=True) @ images.T)[0]
            assert engine_main([*base, "search", caption, "--k", "4", "--json"]) == 0
            found = json.loads(capsys.readouterr().out)
            assert found[0]["path"].endswith(paths[int(scores.argmax())].name), caption
            got = {r["path"].rsplit("/", 1)[-1]: r["score"] for r in found}
            for p, s in zip(paths, scores.tolist()):
                assert got[p.name] == pytest.approx(s, abs=1e-4)


@pytest.mark.slow  # two XNNPACK lowerings: about 90 s on two cores
def test_executorch_bundle_of_the_assembled_student_passes_parity_and_tokenizes_like_hf(assembled_bundle, tmp_path, capsys):
    from export.executorch import main as executorch_main

    student, onnx_bundle = assembled_bundle
    run = onnx_bundle.parent / "run"
    out = tmp_path / "et"
    assert executorch_main(["--checkpoint", str(run), "--out", str(out), "--log-level", "WARNING"]) == 0
    manifest = verify_bundle(out)
    assert manifest["backend"] == "executorch" and manifest["tokenizer"]["kind"] == "wordpiece"
    assert manifest["parity"]["status"] == "passed" and min(manifest["parity"]["cos_min"].values()) >= 0.99999
    tokenizer = read_bundle(out).tokenizer
    want = student.tokenizer(CAPTIONS, padding="max_length", truncation=True, max_length=64, return_tensors="np")
    np.testing.assert_array_equal(tokenizer(CAPTIONS), want["input_ids"])
