"""A hostile or damaged bundle manifest: refused with one line naming the key, before any file it names is read."""
import hashlib
import json

import pytest

from app.engine.runtimes import ModelLoadError, load_encoders
from app.engine.runtimes.bundle import read_bundle


def _edit_manifest(root, edit) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_a_manifest_naming_a_file_outside_the_bundle_is_refused(fake_bundle, tmp_path):
    outside = tmp_path / "outside-secret.txt"
    outside.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    rel = "../outside-secret.txt"
    _edit_manifest(fake_bundle, lambda m: m["files"].update({rel: {"sha256": digest, "bytes": outside.stat().st_size}}))
    with pytest.raises(ModelLoadError, match="leads outside the bundle"):
        read_bundle(fake_bundle)


def test_a_program_outside_the_bundle_is_refused(fake_bundle):
    _edit_manifest(fake_bundle, lambda m: m["image"].update(program="/etc/passwd"))
    with pytest.raises(ModelLoadError, match="image.program"):
        read_bundle(fake_bundle)


def test_a_bpe_file_outside_the_bundle_is_refused(fake_bundle):
    from export.bundle import file_table

    path = fake_bundle / "tokenizer.json"
    config = json.loads(path.read_text())
    config["bpe_file"] = "../../../etc/hostname"
    path.write_text(json.dumps(config))
    _edit_manifest(fake_bundle, lambda m: m.update(files=file_table(fake_bundle)))  # an attacker re-hashes
    with pytest.raises(ModelLoadError, match="BPE file"):
        read_bundle(fake_bundle)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(files=list(m["files"])), "files is a list"),
    (lambda m: m.update(embedding_dim=None), "embedding_dim None"),
    (lambda m: m.update(embedding_dim=10**9), "embedding_dim 1000000000"),
    (lambda m: m["text"].update(context_length=1e10), "context_length 10000000000"),
    (lambda m: m["image"]["input"].update(shape="nonsense"), None),
])
def test_malformed_manifest_values_are_one_line_errors(fake_bundle, edit, message):
    _edit_manifest(fake_bundle, edit)
    if message is None:  # tolerated: the image batch is then free
        assert read_bundle(fake_bundle).image_batch is None
        return
    with pytest.raises(ModelLoadError, match=message):
        load_encoders(fake_bundle)


def test_a_bpe_file_that_is_not_gzip_is_a_one_line_error(fake_bundle):
    from export.bundle import file_table

    config = json.loads((fake_bundle / "tokenizer.json").read_text())
    (fake_bundle / config["bpe_file"]).write_text("this is not gzip\n" * 100)
    _edit_manifest(fake_bundle, lambda m: m.update(files=file_table(fake_bundle)))
    with pytest.raises(ModelLoadError, match="cannot build preprocessing/tokenizer"):
        read_bundle(fake_bundle)
