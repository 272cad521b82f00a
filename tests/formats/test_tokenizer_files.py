"""formats.tokenizer_files: a tokenizer's files by kind, with errors that name the file and the key."""
from __future__ import annotations

import gzip

import pytest

from formats.errors import FormatError
from formats.manifest import manifest_problems
from formats.tokenizer_files import (
    BPE,
    BPE_FILE,
    FILE_KEY,
    VOCAB_FILE,
    WORDPIECE,
    TokenizerFiles,
    tokenizer_files,
    tokenizer_kind,
    vocabulary_name,
)


def _bpe(root):
    with gzip.open(root / BPE_FILE, "wt") as f:
        f.write("#version: 0.2\ni n\n")
    return {"kind": "open_clip.SimpleTokenizer", FILE_KEY[BPE]: BPE_FILE, "context_length": 77}


def _wordpiece(root):
    (root / VOCAB_FILE).write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n")
    return {"kind": WORDPIECE, FILE_KEY[WORDPIECE]: VOCAB_FILE, "context_length": 64}


@pytest.mark.parametrize(("kind", "expected"), [
    ("bpe", BPE), ("open_clip", BPE), ("open_clip.SimpleTokenizer", BPE), (None, BPE), ("wordpiece", WORDPIECE)])
def test_every_name_a_writer_used_reads_as_its_kind(kind, expected):
    assert tokenizer_kind({} if kind is None else {"kind": kind}) == expected


def test_an_unknown_kind_or_no_object_names_the_file():
    with pytest.raises(FormatError, match=r"x/tokenizer.json: unknown tokenizer kind 'sentencepiece'"):
        tokenizer_kind({"kind": "sentencepiece"}, "x/tokenizer.json")
    with pytest.raises(FormatError, match="is a list, not an object"):
        tokenizer_kind([], "x/tokenizer.json")


def test_both_kinds_round_trip(tmp_path):
    assert tokenizer_files(tmp_path, _bpe(tmp_path)) == TokenizerFiles(BPE, tmp_path / BPE_FILE)
    assert tokenizer_files(tmp_path, _wordpiece(tmp_path)) == TokenizerFiles(WORDPIECE, tmp_path / VOCAB_FILE)
    # a run card names the WordPiece file under "vocab" (formats.run_card)
    assert vocabulary_name({"kind": WORDPIECE, "vocab": VOCAB_FILE}) == VOCAB_FILE


@pytest.mark.parametrize("name", ["../../etc/hostname", "/etc/passwd", "", None, "a\\b", "c:/x"])
def test_a_name_outside_the_directory_is_refused_with_its_key(tmp_path, name):
    with pytest.raises(FormatError, match=r"bundle/tokenizer.json: bpe_file names BPE file"):
        vocabulary_name({"kind": "bpe", "bpe_file": name}, "bundle/tokenizer.json")


def test_missing_or_wrong_files_are_named(tmp_path):
    config = _bpe(tmp_path)
    (tmp_path / BPE_FILE).write_text("not gzip")
    with pytest.raises(FormatError, match=rf"{BPE_FILE} is not gzip"):
        tokenizer_files(tmp_path, config)
    (tmp_path / BPE_FILE).unlink()
    with pytest.raises(FormatError, match=rf"BPE file .*{BPE_FILE} \(named in tokenizer.json\) not found"):
        tokenizer_files(tmp_path, config)
    config = _wordpiece(tmp_path)
    (tmp_path / VOCAB_FILE).write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(FormatError, match=rf"{VOCAB_FILE} is not UTF-8 text"):
        tokenizer_files(tmp_path, config)
    (tmp_path / VOCAB_FILE).write_text("\n")
    with pytest.raises(FormatError, match=rf"{VOCAB_FILE} is empty"):
        tokenizer_files(tmp_path, config)


def test_the_manifest_reader_asks_here(tmp_path):
    manifest = {"files": {}, "image": {"program": "i"}, "text": {"program": "t", "context_length": 77},
                "embedding_dim": 8, "precision": "fp32"}
    problems = manifest_problems(manifest, {"kind": "wordpiece", "vocab_file": VOCAB_FILE})
    assert problems == [f"tokenizer.json names vocabulary file {VOCAB_FILE!r}, which is not a file listed in the bundle"]
    assert "unknown tokenizer kind 'x'" in manifest_problems(manifest, {"kind": "x"})[0]
