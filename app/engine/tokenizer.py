"""Search queries -> token ids: cleaning, length caps and a clear error for queries with nothing in them.

The tokenizer itself is picked by the kind its files have (``formats.tokenizer_files``): open_clip's
byte-level BPE (``app.engine.bpe``; or the training tokenizer of a checkpoint, desktop only:
``app.desktop.checkpoint_tokenizer``) or BERT WordPiece (``app.engine.wordpiece``). Both give
(B, context_length) ids, zero padded after the sequence's last token (EOT, [SEP]); BPE puts
``<start_of_text>`` first and ``<end_of_text>`` (the highest id) last, truncated to the context length
as open_clip does. Emoji and any other Unicode go through BPE bytes.
"""
from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from formats.errors import UserError
from formats.text import sequence_length
from formats.tokenizer_files import WORDPIECE, tokenizer_files

logger = logging.getLogger(__name__)

# Characters of a query kept before tokenising (after collapsing whitespace). open_clip keeps the
# first context_length tokens anyway; the cap only bounds BPE work for a pasted novel. Every BPE
# token covers at least one character, so 4096 characters hold far more than 77 tokens.
MAX_QUERY_CHARS = 4096


# Unicode categories that show nothing on their own: spaces, format (zero-width, BOM), controls.
_INVISIBLE = {"Zs", "Cf", "Cc"}


class QueryError(UserError, ValueError):
    """A search request that cannot be run as given (empty query, bad K, unreadable query image)."""


class QueryTokenizer:
    """Wraps an open_clip-style tokenizer: list[str] -> (B, context_length) ids (torch or numpy)."""

    def __init__(self, tokenize: Callable[[list[str]], Any], context_length: int, info: dict[str, Any] | None = None):
        self._tokenize = tokenize
        self.context_length = int(context_length)
        self.info = dict(info or {})

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(B, context_length) int64 token ids, as in training (no query cleaning)."""
        out = self._tokenize(list(texts))
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.int64)

    def encode_query(self, text: str) -> np.ndarray:
        """One query -> (1, L) int64 ids cut right after its EOT token (L <= context_length).

        Raises QueryError for a non-string, an empty or whitespace-only query, or one whose
        characters all vanish in the tokenizer's cleaning (e.g. only zero-width spaces).
        """
        if not isinstance(text, str):
            raise QueryError(f"a query must be text, got {type(text).__name__}")
        cleaned = " ".join(text.split())
        if not any(unicodedata.category(ch) not in _INVISIBLE for ch in cleaned):
            raise QueryError("empty query: type a few words describing the photo")
        if len(cleaned) > MAX_QUERY_CHARS:
            logger.info("query of %d characters cut to %d before tokenising", len(cleaned), MAX_QUERY_CHARS)
            cleaned = cleaned[:MAX_QUERY_CHARS]
        tokens = self([cleaned])
        length = sequence_length(tokens[0])
        if length <= 2:
            raise QueryError(f"query {text[:40]!r} has nothing the model can read once cleaned")
        return tokens[:, :length]


def tokenizer_from_files(root: Path, config: dict[str, Any], context_length: int,
                         info: dict[str, Any] | None = None) -> QueryTokenizer:
    """The query tokenizer of the files in ``root`` that ``config`` (a bundle's ``tokenizer.json``)
    describes, by kind: WordPiece from its vocabulary, else open_clip BPE from its merges.

    Raises FormatError (a ValueError) naming the file when the description or the files are unusable.
    """
    files = tokenizer_files(root, config)
    if files.kind == WORDPIECE:
        return wordpiece_tokenizer(files.vocabulary, bool(config.get("lowercase", True)), context_length, info)
    from app.engine.bpe import BpeTokenizer  # imported when a model needs it (launch time)

    return QueryTokenizer(BpeTokenizer.from_bundle(root), context_length, info)


def wordpiece_tokenizer(vocabulary: Path, lowercase: bool, context_length: int,
                        info: dict[str, Any] | None = None) -> QueryTokenizer:
    """BERT WordPiece on ``vocab.txt``, lowercasing and stripping accents or neither (as BERT's uncased
    and cased models do): a bundle's tokenizer and a clip art run's alike."""
    from app.engine.wordpiece import WordPieceTokenizer  # imported when a model needs it (launch time)

    wordpiece = WordPieceTokenizer.from_files(vocabulary)
    wordpiece.lowercase = wordpiece.strip_accents = lowercase
    return QueryTokenizer(lambda texts: wordpiece(texts, context_length), context_length, info)
