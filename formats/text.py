"""How long a token sequence is: the ids up to and including the last non-padding id (padding is 0).

A text batch is (B, context_length) ids zero-padded after the sequence's last token: EOT for open_clip's
BPE (its highest id), [SEP] for BERT WordPiece. Programs and models take sequences cut right after that
token (padding after it does not change the embedding), so each reader cuts the same way. A 0 inside a
sequence (open_clip's "!") is always followed by EOT, so it never ends one.
Works on numpy arrays and torch tensors alike (only ``!=``, ``cumsum``, ``argmax`` and slicing are used).
"""
from __future__ import annotations

from typing import Any


def _last_real(tokens: Any) -> Any:
    """Index of the last non-zero id along the last axis (the first index where the running count peaks)."""
    return (tokens != 0).cumsum(-1).argmax(-1)


def sequence_length(row: Any) -> int:
    """Ids up to and including the last real token in one (L,) row of token ids."""
    return int(_last_real(row)) + 1


def batch_length(tokens: Any) -> int:
    """Ids up to and including the latest last real token of a (B, L) batch: the longest sequence's length."""
    return int(_last_real(tokens).max()) + 1


def cut_batch(tokens: Any) -> Any:
    """(B, L) -> (B, L') cut after the longest sequence's last token: same embeddings, less work."""
    return tokens[:, : batch_length(tokens)]


def cut_row(tokens: Any, i: int) -> Any:
    """Row ``i`` of a (B, L) batch as (1, L_i), cut right after its last token (a view)."""
    return tokens[i : i + 1, : sequence_length(tokens[i])]
