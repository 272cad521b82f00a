"""Queries: empty, whitespace-only, huge and emoji queries; the torch-free BPE equals open_clip's tokenizer."""
import numpy as np
import pytest
from open_clip.tokenizer import SimpleTokenizer, default_bpe

from app.desktop.checkpoint_tokenizer import checkpoint_tokenizer
from app.engine.bpe import BpeTokenizer
from app.engine.tokenizer import QueryError, QueryTokenizer
from compression.models.teacher import build_tokenizer

CTX = 32
PROBES = [
    "a red circle",
    "A Red circle  &amp; two BLUE squares!",
    "",
    "   ",
    "🐱 cat on a 🛋️ sofa 🎉🎉",
    "naïve café — “quoted” Ünïcödé ßtraße 東京の写真 фото",
    "it's they're we've i'm you'll he'd",
    "x " * 100,
    "supercalifragilisticexpialidocious" * 5,
    "123 4567 3.14159 #hashtag @user http://example.com/a?b=c",
    "tab\tnew\nline\r\n",
]


@pytest.fixture(scope="module")
def tokenizer() -> QueryTokenizer:
    return checkpoint_tokenizer({"kind": "open_clip", "model": "synthclip-micro", "context_length": CTX})


@pytest.mark.parametrize("query", ["", "   ", "\n\t ", "\u200b\u200b", "\u00a0"])
def test_empty_queries_are_a_clear_error(tokenizer, query):
    with pytest.raises(QueryError, match="empty query|nothing the model can read"):
        tokenizer.encode_query(query)


def test_non_text_query_is_an_error(tokenizer):
    with pytest.raises(QueryError, match="must be text"):
        tokenizer.encode_query(None)  # type: ignore[arg-type]


def test_query_is_cut_after_eot_and_equals_training_tokens(tokenizer):
    tokens = tokenizer.encode_query("  a red   circle ")
    train = build_tokenizer("synthclip-micro", CTX)(["a red circle"]).numpy()
    assert tokens.shape == (1, int(train[0].argmax()) + 1)
    np.testing.assert_array_equal(tokens[0], train[0, : tokens.shape[1]])


def test_ten_thousand_character_query_is_truncated_to_context(tokenizer):
    tokens = tokenizer.encode_query("a very long description of a photo " * 300)  # 10,500 characters
    assert tokens.shape == (1, CTX)
    assert tokens[0, -1] == tokens.max()  # ends with EOT


def test_emoji_query_tokenizes(tokenizer):
    tokens = tokenizer.encode_query("🐱🐶 🎉")
    assert tokens.shape[1] > 2 and tokens[0, -1] == tokens.max()


def test_bpe_tokenizer_equals_open_clip():
    ours = BpeTokenizer(default_bpe(), CTX)
    theirs = SimpleTokenizer(default_bpe(), context_length=CTX)
    np.testing.assert_array_equal(ours(PROBES), theirs(PROBES).numpy())
    assert (ours.sot_token_id, ours.eot_token_id, ours.vocab_size) == (
        theirs.sot_token_id, theirs.eot_token_id, theirs.vocab_size)


def test_a_plain_ascii_query_never_imports_ftfy_and_tokenizes_as_open_clip():
    """ftfy's import was 0.18 s of launch-to-first-result; it is only needed for text it could change."""
    import random
    import string
    import subprocess
    import sys

    code = ("import sys; from app.engine.bpe import BpeTokenizer; "
            f"t = BpeTokenizer({default_bpe()!r}, 77); t(['a red circle left of a blue box']); "
            "print('ftfy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    ours, theirs = BpeTokenizer(default_bpe(), 77), SimpleTokenizer()
    rng = random.Random(0)
    chars = string.printable + "&éü“”ﬁ\u00a0"
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    texts += ["a dog &amp;amp; a cat", "caf\u00c3\u00a9", "\x1b[31mred\x1b[0m"]
    for text in texts:
        assert ours([text])[0].tolist() == [t for t in theirs([text])[0].tolist()], text
