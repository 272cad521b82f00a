"""`python -m export.parity`: the table, the JSON, the exit status."""

import json

import pytest

from export.parity import main


def test_parity_cli_prints_the_table(et_fp32_bundle, coreml_bundle, tiny_paths, tmp_path, capsys):
    out = tmp_path / "parity.json"
    bundles = ["--bundle", str(et_fp32_bundle), "--bundle", str(coreml_bundle)]
    code = main([*bundles, "--cache-dir", str(tiny_paths[1]), "--images", "8", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    for needle in (
        "PyTorch student",
        "executorch-xnnpack (tiny-executorch)",
        "coreml (tiny-coreml)",
        "prediction skipped",
        "fp16 emulated",
        "teacher",
        "RSUM",
        "text at actual length vs length 32",
    ):
        assert needle in text, needle
    reports = json.loads(out.read_text())
    assert [r["precision"] for r in reports] == ["fp32", "fp16"]
    assert reports[0]["image"]["cos_min"] >= 0.999 and reports[0]["text"]["cos_min"] >= 0.999
    assert reports[1]["skipped"] and reports[1]["emulation"]["text_cos_min"] > 0.99


@pytest.mark.slow
def test_parity_cli_fails_on_a_threshold(et_int8_bundle, tiny_paths, capsys, monkeypatch):
    from export import parity

    monkeypatch.setitem(parity.COSINE_THRESHOLDS, "int8", 1.01)  # unreachable: the run must report FAIL
    code = main(["--bundle", str(et_int8_bundle), "--cache-dir", str(tiny_paths[1]), "--images", "8"])
    text = capsys.readouterr().out
    assert code == 1 and "FAIL" in text and "min cosine" in text


def test_parity_cli_missing_bundle(tmp_path, capsys):
    assert main(["--bundle", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and len(err.strip().splitlines()) == 1
