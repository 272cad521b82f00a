"""int8 for XNNPACK: PT2E static quantisation of linear/conv, calibrated on real data, and an int8 token table.

Scheme (recorded in the manifest):

* weights of every ``linear`` and ``conv2d``: int8, symmetric, per output channel;
* their input/output activations: int8, per tensor, ranges from a histogram observer run on real
  training images/captions (the XNNPACK quantizer's static config);
* the residual stream (adds, concatenation with the class token), LayerNorms, softmax and the
  final L2 normalisation stay fp32. Quantising those too (the quantizer's global default) took the
  micro test student's image cosine to PyTorch far below int8's parity threshold
  (``export.parity.COSINE_THRESHOLDS``), for no size gain;
* the text token-embedding table (most of the text program's bytes) is stored int8 per row and
  looked up with ExecuTorch's ``quantized_decomposed::embedding_byte`` kernel. A runtime must have
  the quantized kernels linked (``executorch.kernels.quantized`` in Python).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from tqdm import tqdm

logger = logging.getLogger(__name__)

QUANT_SCHEME = {
    "weights": "int8 symmetric per output channel (linear, conv)",
    "activations": "int8 per tensor, static ranges calibrated on real training samples (linear/conv inputs and outputs)",
    "float": "residual adds, class-token concat, LayerNorm, attention softmax, L2 norm stay fp32",
    "token_embedding": "int8 per row (quantized_decomposed::embedding_byte)",
}
REQUIRED_KERNELS = ["quantized_decomposed::embedding_byte.out"]


def register_quantized_ops() -> None:
    """Make ``torch.ops.quantized_decomposed.embedding_byte`` known to torch (export side)."""
    import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401


class Int8Embedding(nn.Module):
    """nn.Embedding with int8 rows and one fp32 scale per row: (B, L) ids -> (B, L, width) fp32."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        register_quantized_ops()
        w = embedding.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.register_buffer("weight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale)

    @property
    def num_embeddings(self) -> int:
        return self.weight.shape[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized_decomposed.embedding_byte.default(
            self.weight, self.scales, None, -127, 127, ids
        )


def linear_conv_quantizer():
    """XNNPACKQuantizer annotating only linear and conv2d (static, per-channel weights)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    quantizer = XNNPACKQuantizer()
    for op in (torch.ops.aten.linear.default, torch.ops.aten.conv2d.default):
        quantizer.set_operator_type(op, config)
    return quantizer


def image_batches(images: torch.Tensor, batch_size: int = 32) -> list[torch.Tensor]:
    """(N, 3, S, S) -> chunks of at most ``batch_size`` images."""
    return list(images.split(batch_size))


def text_batches(sequences: Sequence[torch.Tensor], batch_size: int = 64) -> list[torch.Tensor]:
    """(1, L_i) id sequences -> (B, L) batches of equal length, so that no padding is ever observed."""
    by_length: dict[int, list[torch.Tensor]] = {}
    for seq in sequences:
        by_length.setdefault(int(seq.shape[1]), []).append(seq)
    batches = []
    for length in sorted(by_length):
        group = torch.cat(by_length[length])
        batches += list(group.split(batch_size))
    return batches


def quantize_pt2e(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic_shapes: Sequence | None,
    calibration: Sequence[torch.Tensor],
    what: str,
) -> torch.fx.GraphModule:
    """Export ``module`` with a dynamic batch, insert observers, run the calibration batches, convert.

    ``example`` and ``dynamic_shapes`` are those of the batch-1 program; here dim 0 is made dynamic
    so that calibration runs in batches (a histogram observer costs about as much per call as per
    sample). Returns the int8 Q/DQ graph module, to be exported again at batch 1 and lowered.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError(f"no calibration samples for the {what} encoder")
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims = dict((dynamic_shapes or ({},))[0])
    dims[0] = batch
    example2 = tuple(x.expand(2, *x.shape[1:]).contiguous() for x in example)
    graph = torch.export.export(module, example2, dynamic_shapes=(dims,)).module()
    prepared = prepare_pt2e(graph, linear_conv_quantizer())
    n = 0
    with torch.no_grad():
        for x in tqdm(calibration, desc=f"calibrating {what}", leave=False, disable=None):
            prepared(x)
            n += x.shape[0]
    logger.info("calibrated the %s encoder on %d real samples in %d batches", what, n, len(calibration))
    return convert_pt2e(prepared)
