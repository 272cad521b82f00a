"""ExecuTorch export of the tiny run: fp32 and int8, executed by executorch.runtime and compared with PyTorch."""

import json
import shutil

import pytest
import torch

from compression.checkpoint import load_student
from compression.models.teacher import build_tokenizer
from export import executorch as et_export
from export.bundle import MANIFEST, verify_bundle
from export.errors import ExportError
from export.parity import check_parity
from export.runtimes import ExecuTorchEncoders

PARITY_IMAGES = 16


def test_fp32_parity_measured_by_the_runtime(et_fp32_bundle, tiny_paths):
    report = check_parity(et_fp32_bundle, cache_dir=tiny_paths[1], n_images=PARITY_IMAGES)
    assert report.runtime.startswith("executorch.runtime") and report.passed, report.failures
    assert report.image.n == PARITY_IMAGES and report.text.n == report.n_captions > PARITY_IMAGES
    assert report.image.cos_min >= 0.999 and report.text.cos_min >= 0.999
    assert report.tokenizer_check["identical"]
    for key, value in report.recall_pytorch.items():  # fp32: the same retrieval, up to ties
        assert abs(report.recall_exported[key] - value) <= 100 / report.n_captions + 1e-6, key


@pytest.mark.slow  # an int8 export (calibration + lowering) takes ~40 s on 2 cores
def test_int8_parity_and_size(et_int8_bundle, et_fp32_bundle):
    m8, m32 = verify_bundle(et_int8_bundle), verify_bundle(et_fp32_bundle)
    assert m8["precision"] == "int8" and m8["parity"]["status"] == "passed"
    assert m8["parity"]["image"]["cos_min"] >= 0.99 and m8["parity"]["text"]["cos_min"] >= 0.99
    assert m8["quantization"]["calibration"]["split"] == "train"
    assert "quantized_decomposed::embedding_byte.out" in m8["runtime"]["required_kernels"]
    size = {name: f["bytes"] for m in (m8, m32) for name, f in m["files"].items()}
    assert size["student_text_xnnpack_int8.pte"] < size["student_text_xnnpack_fp32.pte"] / 3
    assert size["student_image_xnnpack_int8.pte"] < size["student_image_xnnpack_fp32.pte"]


@pytest.mark.parametrize("precision", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
def test_text_at_actual_length_equals_full_length(precision, request, tiny_paths):
    bundle = request.getfixturevalue("et_fp32_bundle" if precision == "fp32" else "et_int8_bundle")
    runner = ExecuTorchEncoders(bundle, verify_bundle(bundle))
    student, _ = load_student(tiny_paths[0])
    texts = ["a red circle", "a big purple disc above a small white box on a navy background", "x"]
    tokens = build_tokenizer("synthclip-micro", 32)(texts)
    for i in range(len(texts)):
        length = int(tokens[i].argmax()) + 1
        short = runner.encode_text(tokens[i : i + 1, :length])
        full = runner.encode_text(tokens[i : i + 1], length=32)
        torch.testing.assert_close(short, full, atol=1e-6, rtol=0)
        if precision == "fp32":
            with torch.no_grad():
                torch.testing.assert_close(
                    full, student.text(tokens[i : i + 1], normalize=True), atol=1e-5, rtol=0
                )


def test_failed_reexport_keeps_the_old_bundle(et_fp32_bundle, bundle_copy, tiny_paths, monkeypatch):
    bundle = bundle_copy(et_fp32_bundle)
    before = (bundle / MANIFEST).read_bytes()
    programs = {enc: (bundle / f"student_{enc}_xnnpack_fp32.pte").read_bytes() for enc in ("image", "text")}
    facts = {enc: {} for enc in programs}
    monkeypatch.setattr(et_export, "build_programs", lambda *a, **k: (programs, facts, None))

    def crash(*args, **kwargs):
        raise OSError("simulated disk full while writing the tokenizer")

    monkeypatch.setattr(et_export, "write_tokenizer_files", crash)
    with pytest.raises(OSError, match="simulated"):
        et_export.export_executorch(tiny_paths[0], bundle, "fp32", cache_dir=tiny_paths[1])
    assert (bundle / MANIFEST).read_bytes() == before
    verify_bundle(bundle)
    assert sorted(p.name for p in bundle.parent.iterdir()) == [bundle.name]


def test_reexport_replaces_the_bundle(et_fp32_bundle, bundle_copy, tiny_paths, monkeypatch):
    bundle = bundle_copy(et_fp32_bundle)
    (bundle / "stale-file-from-an-old-export.txt").write_text("old")
    programs = {
        enc: (et_fp32_bundle / f"student_{enc}_xnnpack_fp32.pte").read_bytes() for enc in ("image", "text")
    }
    monkeypatch.setattr(
        et_export, "build_programs", lambda *a, **k: (programs, {"image": {}, "text": {}}, None)
    )
    et_export.export_executorch(tiny_paths[0], bundle, "fp32", cache_dir=tiny_paths[1], parity_images=4)
    assert not (bundle / "stale-file-from-an-old-export.txt").exists()
    assert verify_bundle(bundle)["parity"]["status"] == "passed"
    assert sorted(p.name for p in bundle.parent.iterdir()) == [bundle.name]


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_cli_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    err = _one_line_error(
        capsys, et_export.main(["--checkpoint", str(missing), "--out", str(tmp_path / "b")])
    )
    assert str(missing) in err and "not found" in err


def test_cli_incompatible_checkpoint(tiny_paths, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_paths[0], run)
    meta = json.loads((run / "student.json").read_text())
    meta["spec"]["text"]["width"] = 96  # weights on disk are 64 wide
    (run / "student.json").write_text(json.dumps(meta))
    err = _one_line_error(capsys, et_export.main(["--checkpoint", str(run), "--out", str(tmp_path / "b")]))
    assert "student.safetensors" in err and "does not fit" in err


def test_cli_unwritable_output(tiny_paths, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "bundle"
    err = _one_line_error(capsys, et_export.main(["--checkpoint", str(tiny_paths[0]), "--out", str(out)]))
    assert str(blocker) in err


@torch.library.custom_op("pocketclip_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x):
    return torch.empty_like(x)


class _Unlowerable(torch.nn.Module):
    def forward(self, image):
        return torch.ops.pocketclip_test.mystery(image).mean(dim=(2, 3))


def test_an_op_the_backend_cannot_run_is_named():
    with pytest.raises(ExportError, match=r"image.*pocketclip_test::mystery"):
        et_export.lower_to_executorch(_Unlowerable(), (torch.zeros(1, 3, 8, 8),), None, "image")


def test_cli_reports_unlowerable_op(tiny_paths, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(et_export, "export_wrappers", lambda student: (_Unlowerable(), None))
    err = _one_line_error(
        capsys, et_export.main(["--checkpoint", str(tiny_paths[0]), "--out", str(tmp_path / "b")])
    )
    assert "image" in err and "pocketclip_test::mystery" in err
    assert not (tmp_path / "b").exists()
