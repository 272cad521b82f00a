"""How long a token sequence is: every tokenizer here ends a sequence with EOT, the highest id.

A text batch is (B, context_length) ids zero-padded after EOT; programs and models take sequences
cut right after EOT (padding after it does not change the embedding), so each reader cuts the same way.
Works on numpy arrays and torch tensors alike (only ``argmax`` and slicing are used).
"""
from __future__ import annotations

from typing import Any


def sequence_length(row: Any) -> int:
    """Ids up to and including EOT in one (L,) row of token ids."""
    return int(row.argmax()) + 1


def batch_length(tokens: Any) -> int:
    """Ids up to and including the latest EOT of a (B, L) batch: the longest sequence's length."""
    return int(tokens.argmax(1).max()) + 1


def cut_batch(tokens: Any) -> Any:
    """(B, L) -> (B, L') cut after the longest sequence's EOT: same embeddings, less work."""
    return tokens[:, : batch_length(tokens)]


def cut_row(tokens: Any, i: int) -> Any:
    """Row ``i`` of a (B, L) batch as (1, L_i), cut right after its EOT (a view)."""
    return tokens[i : i + 1, : sequence_length(tokens[i])]
