"""ONNX export of the tiny run: fp32 and int8 programs run by ONNX Runtime, compared with PyTorch."""

import pytest
import torch

from compression.checkpoint import load_student
from compression.models.teacher import build_tokenizer
from export import onnx as onnx_export
from export.bundle import verify_bundle
from export.errors import ExportError
from export.parity import ParityError, check_parity
from export.runtimes import ONNXEncoders

PARITY_IMAGES = 16


def test_fp32_parity_measured_by_onnxruntime(onnx_bundles, tiny_paths):
    report = check_parity(onnx_bundles["fp32"], cache_dir=tiny_paths[1], n_images=PARITY_IMAGES)
    assert report.runtime.startswith("onnxruntime") and report.passed, report.failures
    assert report.image.n == PARITY_IMAGES and report.text.n == report.n_captions > PARITY_IMAGES
    assert report.image.cos_min >= 0.99999 and report.text.cos_min >= 0.99999
    assert report.tokenizer_check["identical"]
    for key, value in report.recall_pytorch.items():  # fp32: the same retrieval, up to ties
        assert abs(report.recall_exported[key] - value) <= 100 / report.n_captions + 1e-6, key


def test_int8_bundle_is_smaller_and_kept_only_with_parity(onnx_bundles):
    m8, m32 = verify_bundle(onnx_bundles["int8"]), verify_bundle(onnx_bundles["fp32"])
    assert m8["backend"] == m32["backend"] == "onnx" and m8["parity"]["status"] == "passed"
    assert m8["parity"]["image"]["cos_min"] >= 0.99 and m8["parity"]["text"]["cos_min"] >= 0.99
    assert m8["quantization"]["method"].startswith("onnxruntime.quantization")
    size = {name: f["bytes"] for m in (m8, m32) for name, f in m["files"].items()}
    assert size["student_text_onnx_int8.onnx"] < size["student_text_onnx_fp32.onnx"] / 3


def test_text_at_actual_length_equals_full_length_and_the_student(onnx_bundles, tiny_paths):
    bundle = onnx_bundles["fp32"]
    runner = ONNXEncoders(bundle, verify_bundle(bundle))
    student, _ = load_student(tiny_paths[0])
    texts = ["a red circle", "a big purple disc above a small white box on a navy background", "x"]
    tokens = build_tokenizer("synthclip-micro", 32)(texts)
    for i in range(len(texts)):
        short = runner.encode_text(tokens[i : i + 1, : int(tokens[i].argmax()) + 1])
        full = runner.encode_text(tokens[i : i + 1], length=32)
        torch.testing.assert_close(short, full, atol=1e-6, rtol=0)
        with torch.no_grad():
            torch.testing.assert_close(full, student.text(tokens[i : i + 1], normalize=True), atol=1e-5, rtol=0)


class _WrongImageEncoder(torch.nn.Module):
    """Unit vectors of the right size that have nothing to do with the student: parity must refuse them."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.randn(3, dim))

    def forward(self, image):
        return torch.nn.functional.normalize(image.mean(dim=(2, 3)) @ self.proj, dim=-1)


def test_failed_parity_writes_no_bundle(onnx_bundles, tiny_paths, tmp_path, monkeypatch):
    dim = verify_bundle(onnx_bundles["fp32"])["embedding_dim"]
    wrong = onnx_export.to_onnx(_WrongImageEncoder(dim).eval(), (torch.zeros(1, 3, 32, 32),), "image", None, "image")
    text = (onnx_bundles["fp32"] / "student_text_onnx_fp32.onnx").read_bytes()
    monkeypatch.setattr(onnx_export, "build_programs", lambda *a: {"image": wrong, "text": text})
    with pytest.raises(ParityError, match="image program .* min cosine"):
        onnx_export.export_onnx(tiny_paths[0], tmp_path / "b", cache_dir=tiny_paths[1], parity_images=4)
    assert not (tmp_path / "b").exists()


def test_an_op_onnx_cannot_express_is_named():
    @torch.library.custom_op("pocketclip_test::onnx_mystery", mutates_args=())
    def mystery(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @mystery.register_fake
    def _(x):
        return torch.empty_like(x)

    class Unexportable(torch.nn.Module):
        def forward(self, image):
            return torch.ops.pocketclip_test.onnx_mystery(image).mean(dim=(2, 3))

    with pytest.raises(ExportError, match=r"image encoder.*"):
        onnx_export.to_onnx(Unexportable().eval(), (torch.zeros(1, 3, 8, 8),), "image", None, "image")
