"""The student's two encoders as export-ready modules, with L2 normalisation inside the graph."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from compression.models.text_tower import causal_mask, text_tower_forward

logger = logging.getLogger(__name__)

MIN_TEXT_LENGTH = 2  # the shortest token sequence a tokenizer produces: <start_of_text> <end_of_text>


class ImageEncoderForExport(nn.Module):
    """``image`` (1, 3, H, W) float32, preprocessed -> ``embedding`` (1, D) float32, L2-normalised."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(image), dim=-1)


class TextEncoderForExport(nn.Module):
    """``tokens`` (1, L) int token ids, 2 <= L <= context_length -> ``embedding`` (1, D), L2-normalised.

    ``StudentTextEncoder.forward`` itself (``compression.models.text_tower.text_tower_forward``), with the
    causal mask built at the actual length (``causal_mask``) so that the sequence length stays
    symbolic in ``torch.export``. Padding after EOT does not change the output, because of the mask.

    ``token_embedding`` may be replaced by any module mapping (1, L) ids to (1, L, width), e.g. an
    int8 lookup table for a quantised program.
    """

    def __init__(self, text: nn.Module):
        super().__init__()
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.resblocks = text.resblocks
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.context_length = int(text.positional_embedding.shape[0])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = causal_mask(tokens.shape[1], self.positional_embedding)
        return text_tower_forward(tokens, self.token_embedding, self.positional_embedding, self.resblocks, self.ln_final,
                                  self.text_projection, mask, normalize=True)


def image_example(image_size: int) -> tuple[torch.Tensor]:
    """Example input of the image program: a (1, 3, S, S) float32 tensor."""
    return (torch.zeros(1, 3, image_size, image_size),)


def text_example(context_length: int, eot_id: int, length: int = 8) -> tuple[torch.Tensor]:
    """Example input of the text program: (1, length) int64 ids ``<sot> 0 ... 0 <eot>``.

    The length is deliberately neither 1 nor the context length, so that export does not
    specialise the symbolic length on it.
    """
    length = max(MIN_TEXT_LENGTH + 1, min(length, context_length - 1))
    tokens = torch.zeros(1, length, dtype=torch.long)
    tokens[0, 0] = eot_id - 1  # open_clip: <start_of_text> = EOT - 1
    tokens[0, -1] = eot_id
    return (tokens,)


def text_dynamic_shapes(context_length: int) -> tuple[dict[int, torch.export.Dim]]:
    """``dynamic_shapes`` for ``torch.export``: dim 1 of ``tokens`` in [2, context_length]."""
    return ({1: torch.export.Dim("tokens", min=MIN_TEXT_LENGTH, max=context_length)},)


def export_wrappers(student: nn.Module) -> tuple[ImageEncoderForExport, TextEncoderForExport]:
    """(image, text) export modules of a StudentCLIP, in eval mode, sharing its weights."""
    return ImageEncoderForExport(student.visual).eval(), TextEncoderForExport(student.text).eval()
