"""The encoders of the encoders section built with random weights (seeded), described, and their inputs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.encoder_specs import MATCH_ATOL, QUERY_LENGTHS, SEED, TEACHER_MODEL, EncoderSpec

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# the encoders
# ------------------------------------------------------------------------------------------------


@dataclass
class BuiltEncoder:
    """An encoder ready to time: ``eager`` is the project's own forward, ``export_module`` what is lowered."""

    spec: EncoderSpec
    eager: Callable[[torch.Tensor], torch.Tensor]  # image (B, 3, S, S) or ids (B, L) -> (B, D)
    export_module: nn.Module  # Image/TextEncoderForExport: (B, ...) -> (B, D), L2-normalised
    image_size: int | None = None
    context_length: int | None = None
    eot_id: int | None = None
    layer_ids: list[int] | None = None  # teacher text blocks kept (text)
    full_context: Callable | None = None  # text: the model's own full-context forward, if not ``eager``


def build_teacher(model_name: str = TEACHER_MODEL) -> nn.Module:
    """The teacher CLIP with random weights, frozen, identical in every process (seeded)."""
    from compression.models.teacher import create_teacher, freeze

    torch.manual_seed(SEED)
    return freeze(create_teacher(model_name, pretrained=None))


def teacher_facts(model_name: str = TEACHER_MODEL) -> dict[str, int]:
    """embed_dim, image_size and context_length of an open_clip architecture, without building it."""
    import open_clip

    from compression.models.teacher import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    size = cfg["vision_cfg"]["image_size"]
    return {"embed_dim": cfg["embed_dim"], "image_size": size[0] if isinstance(size, (list, tuple)) else size,
            "context_length": cfg["text_cfg"].get("context_length", 77)}


def build_encoder(spec: EncoderSpec, teacher: nn.Module | None = None) -> BuiltEncoder:
    """The modules of ``spec`` with random weights (seeded: the same in every process), in eval mode.

    Text towers are ``StudentTextEncoder.from_teacher`` copies of the teacher's blocks; the teacher's own
    text tower is timed eagerly through ``encode_text_at_length`` (open_clip's ``encode_text`` is its
    full-context reference) and exported as the same wrapper with all its blocks. Every image encoder
    takes the teacher's image size.
    """
    from compression.models.student import StudentImageEncoder, StudentTextEncoder, select_text_layers
    from compression.models.teacher import text_encoder
    from export.wrappers import ImageEncoderForExport, TextEncoderForExport

    facts = teacher_facts(spec.teacher_model)
    if spec.kind == "image" and spec.role != "teacher":
        torch.manual_seed(SEED)
        module = ImageEncoderForExport(StudentImageEncoder(spec.backbone, facts["embed_dim"])).eval()
        return BuiltEncoder(spec, module, module, image_size=facts["image_size"])
    teacher = teacher if teacher is not None else build_teacher(spec.teacher_model)
    if spec.kind == "image":
        module = ImageEncoderForExport(teacher.visual).eval()
        return BuiltEncoder(spec, module, module, image_size=facts["image_size"])
    if spec.kind != "text":
        raise ValueError(f"encoder {spec.key!r}: unknown kind {spec.kind!r} (image or text)")
    n_teacher = len(teacher.transformer.resblocks)
    is_teacher = spec.role == "teacher"
    layer_ids = list(range(n_teacher)) if is_teacher else select_text_layers(n_teacher, spec.text_layers)
    text = StudentTextEncoder.from_teacher(teacher, layer_ids).eval()
    eager = text_encoder(teacher) if is_teacher else text
    return BuiltEncoder(spec, eager, TextEncoderForExport(text).eval(), context_length=text.context_length,
                        eot_id=text.arch["vocab_size"] - 1, layer_ids=layer_ids,
                        full_context=teacher.encode_text if is_teacher else None)


def count_flops(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int:
    """FLOPs of ``fn(x)`` (a multiply-add is 2) by ``FlopCounterMode``.

    PyTorch's fused attention kernels (nn.MultiheadAttention's fast path, CPU flash SDPA) are not
    counted by the flop counter, so both are switched off for the count: the math path is counted.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return int(counter.get_total_flops())


def architecture(built: BuiltEncoder) -> dict[str, Any]:
    """Tokens, width and depth of a transformer (what explains its speed), else the backbone's family."""
    if built.spec.kind == "text":
        enc = built.export_module
        return {"family": "transformer", "width": int(enc.positional_embedding.shape[1]),
                "depth": len(enc.resblocks), "layer_ids": built.layer_ids,
                "vocab": int(enc.token_embedding.num_embeddings)}
    visual = built.export_module.visual
    if built.spec.role == "teacher":  # open_clip VisionTransformer
        grid = visual.grid_size
        return {"family": "vit", "tokens": grid[0] * grid[1] + 1, "width": visual.transformer.width,
                "depth": len(visual.transformer.resblocks)}
    backbone = visual.backbone
    if hasattr(backbone, "patch_embed") and hasattr(backbone, "blocks"):  # timm VisionTransformer
        return {"family": "vit", "tokens": backbone.patch_embed.num_patches + backbone.num_prefix_tokens,
                "width": backbone.embed_dim, "depth": len(backbone.blocks)}
    return {"family": "timm " + type(backbone).__name__}


# ------------------------------------------------------------------------------------------------
# inputs and the length-invariance proof
# ------------------------------------------------------------------------------------------------


def text_lengths(context_length: int) -> list[int]:
    """The lengths texts are timed at: the typical query lengths below the context, then the full context."""
    return [n for n in QUERY_LENGTHS if n < context_length] + [context_length]


def token_batch(batch: int, length: int, eot_id: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, length) int64 ids ``<sot> w ... w <eot>``: random words, EOT (the highest id) last."""
    if length < 2:
        raise ValueError(f"a token sequence holds at least <sot> and <eot>; got length {length}")
    ids = torch.randint(1, eot_id - 1, (batch, length), generator=generator)
    ids[:, 0] = eot_id - 1  # open_clip: <start_of_text> = EOT - 1
    ids[:, -1] = eot_id
    return ids


def random_token_sequences(
    n: int, context_length: int, eot_id: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``n`` sequences (1, L_i), L_i uniform in [2, context_length], each ending with EOT (cut after it)."""
    lengths = torch.randint(2, context_length + 1, (n,), generator=generator).tolist()
    return [token_batch(1, length, eot_id, generator) for length in lengths]


def pad_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """(B, L) ids zero-padded on the right to (B, length), as the tokenizer pads to the context."""
    return F.pad(tokens, (0, length - tokens.shape[1]))


def compare_embeddings(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Max |a - b| and min cosine over pairs of (B, D) embeddings, each L2-normalised first."""
    max_diff, min_cos = 0.0, 1.0
    for a, b in pairs:
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        max_diff = max(max_diff, float((a - b).abs().max()))
        min_cos = min(min_cos, float((a * b).sum(-1).min()))
    return {"max_abs_diff": max_diff, "min_cos": min_cos}


@torch.inference_mode()
def length_invariance(
    encode: Callable[[torch.Tensor], torch.Tensor],
    sequences: Sequence[torch.Tensor],
    context_length: int,
    full_context: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Encode each (1, L) sequence at its actual length, and zero-padded to ``context_length`` (by
    ``full_context``, default ``encode``); compare.

    ``matches`` is True when no L2-normalised embedding moved by more than MATCH_ATOL: then encoding
    at the actual length is the same computation as the full context, only cheaper.
    """
    full = full_context or encode
    stats = compare_embeddings((encode(s), full(pad_tokens(s, context_length))) for s in sequences)
    lengths = [int(s.shape[1]) for s in sequences]
    return {"sequences": len(sequences), "lengths": [min(lengths), max(lengths)], **stats,
            "matches": stats["max_abs_diff"] <= MATCH_ATOL}





def describe_encoder(built: BuiltEncoder) -> dict[str, Any]:
    """Parameters, GFLOPs per item and architecture of one encoder (``disk`` is added by ``disk_sizes``)."""
    from compression.models.student import count_parameters

    spec = built.spec
    if spec.kind == "image":
        flops = {"per_item": count_flops(built.eager, torch.zeros(1, 3, built.image_size, built.image_size))}
    else:
        gen = torch.Generator().manual_seed(SEED)
        lengths = text_lengths(built.context_length)
        flops = {str(n): count_flops(built.eager, token_batch(1, n, built.eot_id, gen)) for n in lengths}
        flops["per_item"] = flops[str(lengths[-1])]
    return {"label": spec.label, "kind": spec.kind, "role": spec.role, "backbone": spec.backbone,
            "text_layers": spec.text_layers, "params": count_parameters(built.export_module),
            "gflops": {k: v / 1e9 for k, v in flops.items()}, "architecture": architecture(built)}


def disk_sizes(built: BuiltEncoder, params: int, programs: dict[str, dict]) -> dict[str, Any]:
    """MB on disk: fp32 and int8 from the batch-1 .pte files where exported, fp16 from the parameter bytes."""
    from compression.report import disk_mb

    pte = {p["precision"]: p["mb"] for p in programs.values()
           if p["encoder"] == built.spec.key and p["batch"] == 1 and "mb" in p}
    disk = {"fp32_mb": pte.get("fp32"), "fp32_source": "ExecuTorch .pte (batch 1)",
            "fp16_mb": params * 2 / 1e6, "fp16_source": "parameter bytes (2 per parameter)",
            "int8_mb": pte.get("int8"),
            "int8_source": "ExecuTorch .pte (batch 1)" if "int8" in pte else "not exported"}
    if disk["fp32_mb"] is None:
        disk["fp32_mb"], disk["fp32_source"] = disk_mb(built.export_module), "safetensors of the fp32 weights"
    return disk


def build_all(specs: Sequence[EncoderSpec]) -> tuple[dict[str, BuiltEncoder], dict[str, dict]]:
    """Every encoder of ``specs`` (teacher built once) and its description (a forward pass counts its
    FLOPs). An optional encoder that fails either is described by its error instead, and left out."""
    from export.errors import first_line

    teachers = {spec.teacher_model for spec in specs}
    if len(teachers) != 1:
        raise ValueError(f"the encoders of one run share one teacher; got {sorted(teachers)}")
    teacher = build_teacher(teachers.pop())
    built, described = {}, {}
    for spec in specs:
        try:
            b = build_encoder(spec, teacher)
            described[spec.key] = describe_encoder(b)
        except Exception as e:  # an unknown backbone, or one that rejects the image size
            if not spec.optional:
                raise
            described[spec.key] = {"label": spec.label, "kind": spec.kind, "role": spec.role,
                                   "error": f"{type(e).__name__}: {first_line(e)}"}
            logger.warning("leaving out %s: %s", spec.key, described[spec.key]["error"])
            continue
        built[spec.key] = b
    return built, described
