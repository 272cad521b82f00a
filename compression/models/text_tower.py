"""The one forward of a CLIP-style text tower, shared by the teacher, the student and the export wrapper.

Token embedding + positional embedding sliced to the sequence length, the causal transformer,
``ln_final``, pooling at the EOT position (the highest id: open_clip's BPE puts EOT last in its
vocabulary), projection. Sequences may be cut after their EOT (``formats.text``): the causal mask
keeps the EOT output independent of the padding after it, so a short sequence encodes exactly as
its zero-padded full-length form. The three callers differ only in where the mask comes from (a
sliced buffer in training and evaluation, :func:`causal_mask` at a symbolic length for
``torch.export``) and in whether the result is L2-normalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(length: int, like: torch.Tensor) -> torch.Tensor:
    """(L, L) additive mask, -inf above the diagonal, in ``like``'s dtype and device.

    Built from ``arange`` at the actual length, so ``torch.export`` keeps L symbolic (a slice of a
    (context, context) buffer is contiguous only at full length, which makes export specialise on L).
    """
    pos = torch.arange(length, device=like.device)
    return torch.zeros(length, length, dtype=like.dtype, device=like.device).masked_fill(
        pos[None, :] > pos[:, None], float("-inf")
    )


def text_tower_forward(
    tokens: torch.Tensor,
    token_embedding: nn.Module,
    positional_embedding: torch.Tensor,
    blocks: nn.Module,
    ln_final: nn.Module,
    projection: nn.Module | torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    normalize: bool = False,
) -> torch.Tensor:
    """(B, L) int64 token ids, EOT = highest id of each row -> (B, D) text embeddings.

    ``blocks``: an ``nn.ModuleList`` of residual attention blocks run in order, or a module called as
    ``blocks(x, attn_mask=...)`` (open_clip's ``Transformer``). ``attn_mask``: (L, L) additive, or None.
    ``projection``: a (width, D) matrix, a bias-free ``nn.Linear``, or None (no projection).
    ``token_embedding`` may be any module mapping (B, L) ids to (B, L, width) (e.g. an int8 table).
    """
    x = token_embedding(tokens) + positional_embedding[: tokens.shape[1]]
    if isinstance(blocks, nn.ModuleList):
        for block in blocks:
            x = block(x, attn_mask=attn_mask)
    else:
        x = blocks(x, attn_mask=attn_mask)
    x = ln_final(x)
    eot = tokens.argmax(dim=-1)  # (B,)
    x = torch.gather(x, 1, eot[:, None, None].expand(-1, 1, x.shape[-1])).squeeze(1)  # (B, width)
    if isinstance(projection, nn.Linear):
        x = projection(x)
    elif projection is not None:
        x = x @ projection
    return F.normalize(x, dim=-1) if normalize else x
