"""Bundle files: sha256 verification, tokenizer files, text lengths, write-aside-then-swap."""

import json

import pytest

from compression.models.teacher import build_tokenizer
from export.bundle import (
    MANIFEST,
    BundleError,
    check_destination,
    load_tokenizer,
    staged_bundle,
    text_input_length,
    verify_bundle,
    write_manifest,
)


def test_verify_detects_a_tampered_file(et_fp32_bundle, bundle_copy):
    bundle = bundle_copy(et_fp32_bundle)
    manifest = verify_bundle(bundle)
    program = bundle / manifest["text"]["program"]
    data = bytearray(program.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    program.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=manifest["text"]["program"] + " modified"):
        verify_bundle(bundle)


def test_verify_detects_a_missing_file(et_fp32_bundle, bundle_copy):
    bundle = bundle_copy(et_fp32_bundle)
    (bundle / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json missing"):
        verify_bundle(bundle)


def test_manifest_describes_the_bundle(et_fp32_bundle, tiny_paths):
    m = json.loads((et_fp32_bundle / MANIFEST).read_text())
    assert m["format_version"] == 1 and m["backend"] == "executorch-xnnpack" and m["precision"] == "fp32"
    assert m["embedding_dim"] == 64
    assert (
        m["image"]["image_size"] == 32
        and len(m["image"]["mean"]) == 3
        and "center crop" in m["image"]["resize"]
    )
    assert m["text"]["context_length"] == 32 and m["text"]["lengths"] == {
        "kind": "range",
        "min": 2,
        "max": 32,
    }
    assert m["tokenizer"]["sot_token_id"] == 49406 and m["tokenizer"]["eot_token_id"] == 49407
    assert m["source"]["checkpoint"] == str(tiny_paths[0].resolve())
    assert m["versions"]["executorch"] and m["versions"]["torch"]
    assert set(m["files"]) == {
        "student_image_xnnpack_fp32.pte",
        "student_text_xnnpack_fp32.pte",
        "tokenizer.json",
        "bpe_simple_vocab_16e6.txt.gz",
    }
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in m["files"].values())
    assert m["parity"]["status"] == "passed" and m["parity"]["runtime"].startswith("executorch.runtime")


def test_bundled_tokenizer_reproduces_training_tokenizer(et_fp32_bundle):
    texts = ["A small RED circle left of a blue square", "", "ünïcode &amp; punctuation!!", "word " * 40]
    want = build_tokenizer("synthclip-micro", 32)(texts)
    assert (load_tokenizer(et_fp32_bundle)(texts) == want).all()


def test_text_input_length():
    assert text_input_length(5, {"kind": "range", "min": 2, "max": 32}) == 5
    assert text_input_length(1, {"kind": "range", "min": 2, "max": 32}) == 2
    buckets = {"kind": "buckets", "values": [8, 16, 32]}
    assert [text_input_length(n, buckets) for n in (2, 8, 9, 32)] == [8, 8, 16, 32]
    with pytest.raises(BundleError, match="exceeds"):
        text_input_length(33, buckets)


def _write_bundle(out, content: str):
    with staged_bundle(out) as staging:
        (staging / "program.bin").write_text(content)
        write_manifest(staging, {"backend": "test", "precision": "fp32"})


def test_failed_rewrite_leaves_the_old_bundle_intact(tmp_path):
    out = tmp_path / "bundle"
    _write_bundle(out, "old")
    with pytest.raises(RuntimeError, match="simulated"), staged_bundle(out) as staging:
        (staging / "program.bin").write_text("new, half written")
        raise RuntimeError("simulated crash mid-export")
    assert (out / "program.bin").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging directory left behind
    _write_bundle(out, "new")
    assert (out / "program.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_destination_checks(tmp_path):
    stranger = tmp_path / "not-a-bundle"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a bundle"):
        check_destination(stranger)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BundleError, match=str(blocker)):
        check_destination(blocker / "bundle")


def test_the_tokenizer_files_come_from_the_run_directory(tmp_path):
    """A run directory carries its BPE merges (formats.run_card); export copies that file, and a carried
    file that does not reproduce the training tokenizer is refused, naming the bundle."""
    import gzip

    from compression.models.teacher import write_run_tokenizer_files
    from export.bundle import write_tokenizer_files
    from formats.run_card import FORMAT_VERSION, RUN_CARD, SPEC, TOKENIZER, VERSION
    from formats.tokenizer_files import BPE_FILE

    run = tmp_path / "run"
    run.mkdir()
    section = write_run_tokenizer_files("synthclip-tiny", 32, run)
    (run / RUN_CARD).write_text(json.dumps({VERSION: FORMAT_VERSION, SPEC: {}, TOKENIZER: section}))
    (tmp_path / "ok").mkdir()
    write_tokenizer_files(section, tmp_path / "ok", run)
    assert (tmp_path / "ok" / BPE_FILE).read_bytes() == (run / BPE_FILE).read_bytes()
    with gzip.open(run / BPE_FILE, "rt") as f:
        lines = f.read().split("\n")
    with gzip.open(run / BPE_FILE, "wt") as f:  # most merges gone: a smaller vocabulary, other ids
        f.write("\n".join(lines[:1000]))
    (tmp_path / "bad").mkdir()
    with pytest.raises(BundleError, match="do not reproduce the tokenizer of 'synthclip-tiny'"):
        write_tokenizer_files(section, tmp_path / "bad", run)
