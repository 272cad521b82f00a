"""The student dual encoder: a timm image backbone + projection, and a shallow copy of the teacher's text tower."""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, QuickGELU, ResidualAttentionBlock
from torch import nn

from compression.config import ConfigError
from compression.models.teacher import Preprocess
from compression.models.text_tower import text_tower_forward
from compression.models.weights import WeightsUnavailableError, weights_failure

logger = logging.getLogger(__name__)


def select_text_layers(n_teacher: int, n_student: int) -> list[int]:
    """Evenly spaced teacher layer ids, always keeping the first and the last layer.

    12 -> 6: [0, 2, 4, 7, 9, 11]; 12 -> 4: [0, 4, 7, 11]; 6 -> 4: [0, 2, 3, 5].
    """
    if not 1 <= n_student <= n_teacher:
        raise ConfigError(f"cannot keep {n_student} of the teacher's {n_teacher} text layers")
    if n_student == 1:
        return [n_teacher - 1]
    step = (n_teacher - 1) / (n_student - 1)
    return [math.floor(i * step + 0.5) for i in range(n_student)]


def build_causal_mask(length: int) -> torch.Tensor:
    """(L, L) additive mask, -inf above the diagonal: token i attends to tokens <= i (as open_clip)."""
    return torch.full((length, length), float("-inf")).triu_(1)


def create_backbone(backbone: str, pretrained: bool | str = False, backbone_kwargs: dict | None = None) -> nn.Module:
    """``timm.create_model(backbone, num_classes=0)``; ``pretrained`` is False, True (timm's weights,
    downloaded on first use) or a local weights file. Weights that cannot be had: WeightsUnavailableError."""
    if backbone not in timm.list_models() and backbone not in timm.list_models(pretrained=True):
        raise ConfigError(f"unknown image backbone {backbone!r}; try one of timm.list_models('vit_*')")
    kwargs = dict(backbone_kwargs or {})
    if isinstance(pretrained, str):
        if not Path(pretrained).is_file():
            raise WeightsUnavailableError(f"student.image_pretrained: weights file {pretrained!r} not found")
        kwargs["pretrained_cfg_overlay"] = {"file": pretrained}
    try:
        return timm.create_model(backbone, pretrained=bool(pretrained), num_classes=0, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:  # huggingface_hub's offline errors are OSErrors
        if not pretrained:
            raise
        source = pretrained if isinstance(pretrained, str) else (timm.get_pretrained_cfg(backbone).hf_hub_id or backbone)
        raise weights_failure(f"student image weights {backbone}", source, e,
                              "--set student.image_pretrained=/path/to/model.safetensors") from None


def backbone_preprocess(backbone: nn.Module, backbone_kwargs: dict | None = None) -> Preprocess:
    """The preprocessing a timm backbone's pretrained weights expect (its ``pretrained_cfg``):
    e.g. mean = std = 0.5 for the ImageNet-21k ViTs, ImageNet's for MobileNetV4. An ``img_size``
    in ``backbone_kwargs`` (the model was built for it) wins over the weights' input size."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    if "mean" not in cfg or "input_size" not in cfg:
        raise ValueError(f"backbone {type(backbone).__name__} has no pretrained_cfg with mean/std/input_size")
    size = (backbone_kwargs or {}).get("img_size", cfg["input_size"][-1])
    size = size[-1] if isinstance(size, (tuple, list)) else size
    return Preprocess(image_size=int(size), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


class StudentImageEncoder(nn.Module):
    """timm backbone (``num_classes=0``: pooled features) + linear projection to the joint space."""

    def __init__(self, backbone: str, embed_dim: int, pretrained: bool | str = False, backbone_kwargs: dict | None = None):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, backbone_kwargs)
        # pooled width after any pre-logits head (e.g. MobileNetV3's conv_head), else num_features
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.proj = nn.Linear(width, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=width**-0.5)

    def forward(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """images (B, 3, H, W) preprocessed -> (B, D); L2-normalised if ``normalize``."""
        x = self.proj(self.backbone(images))
        return F.normalize(x, dim=-1) if normalize else x


class StudentTextEncoder(nn.Module):
    """Token + positional embeddings, a few CLIP text blocks, final LayerNorm, EOT pooling, projection.

    Mirrors ``open_clip.CLIP.encode_text`` with fewer blocks, and accepts token sequences shorter
    than the context length: with the causal mask, the EOT output does not depend on the padding
    after it, so encoding ``tokens[:, :L]`` equals encoding the full padded sequence.
    """

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.arch = dict(arch)
        width, heads, ctx = arch["width"], arch["heads"], arch["context_length"]
        act = QuickGELU if arch.get("act", "gelu") == "quick_gelu" else nn.GELU
        self.token_embedding = nn.Embedding(arch["vocab_size"], width)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio=arch.get("mlp_ratio", 4.0), act_layer=act, norm_layer=LayerNorm)
            for _ in arch["layer_ids"]
        )
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, arch["embed_dim"]))
        self.register_buffer("attn_mask", build_causal_mask(ctx), persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def context_length(self) -> int:
        return self.arch["context_length"]

    def forward(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """text (B, L) int64 token ids, L <= context_length, EOT = highest id -> (B, D)."""
        length = text.shape[1]
        if length > self.context_length:
            raise ValueError(f"token sequence of length {length} exceeds context length {self.context_length}")
        return text_tower_forward(text, self.token_embedding, self.positional_embedding, self.resblocks, self.ln_final,
                                  self.text_projection, self.attn_mask[:length, :length], normalize)

    @classmethod
    def from_teacher(cls, teacher: nn.Module, layer_ids: list[int]) -> StudentTextEncoder:
        """Initialise from an open_clip CLIP: its embeddings, the chosen blocks, ln_final, projection."""
        blocks = teacher.transformer.resblocks
        n = len(blocks)
        bad = [i for i in layer_ids if not 0 <= i < n]
        if bad or len(set(layer_ids)) != len(layer_ids):
            raise ConfigError(f"text layer ids {layer_ids} must be distinct and in [0, {n}) for this teacher")
        proj = teacher.text_projection
        if isinstance(proj, nn.Linear):
            if proj.bias is not None:
                raise ValueError("teacher text projection has a bias; only bias-free projections are supported")
            proj_w = proj.weight.detach().T
        else:
            proj_w = proj.detach()
        first = blocks[0]
        arch = {
            "vocab_size": teacher.token_embedding.num_embeddings,
            "width": teacher.token_embedding.embedding_dim,
            "heads": first.attn.num_heads,
            "context_length": teacher.positional_embedding.shape[0],
            "mlp_ratio": first.mlp.c_fc.out_features / first.mlp.c_fc.in_features,
            "act": "quick_gelu" if isinstance(first.mlp.gelu, QuickGELU) else "gelu",
            "embed_dim": proj_w.shape[1],
            "layer_ids": list(layer_ids),
            "teacher_layers": n,
        }
        student = cls(arch)
        student.token_embedding.load_state_dict(teacher.token_embedding.state_dict())
        student.positional_embedding.data.copy_(teacher.positional_embedding.detach())
        for dst, i in zip(student.resblocks, layer_ids):
            _load_strict(dst, blocks[i].state_dict(), f"teacher text block {i}")
        _load_strict(student.ln_final, teacher.ln_final.state_dict(), "teacher ln_final")
        student.text_projection.data.copy_(proj_w)
        return student


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict with a message that names the source and the mismatching keys/shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"cannot load {what}: missing {missing}, unexpected {unexpected}, shape mismatches {shapes}")
    module.load_state_dict(state)


class StudentCLIP(nn.Module):
    """The compressed dual encoder; same ``encode_image`` / ``encode_text`` interface as open_clip."""

    accepts_short_text = True  # encode_text takes token sequences cut after their EOT

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = copy.deepcopy(spec)
        img = spec["image"]
        self.visual = StudentImageEncoder(
            img["backbone"], spec["embed_dim"], pretrained=img.get("pretrained", False), backbone_kwargs=img.get("kwargs")
        )
        self.text = StudentTextEncoder(spec["text"])
        self.logit_scale = nn.Parameter(torch.tensor(float(spec.get("logit_scale", math.log(1 / 0.07)))))

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.visual(images, normalize=normalize)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.text(text, normalize=normalize)


def create_student(
    teacher: nn.Module,
    image_backbone: str,
    text_layers: int,
    image_pretrained: bool | str = False,
    image_backbone_kwargs: dict | None = None,
    text_layer_ids: list[int] | None = None,
) -> StudentCLIP:
    """Build a student for ``teacher``: a fresh timm image tower, a text tower cut from the teacher's."""
    n_teacher = len(teacher.transformer.resblocks)
    layer_ids = list(text_layer_ids) if text_layer_ids is not None else select_text_layers(n_teacher, text_layers)
    if len(layer_ids) != text_layers:
        raise ConfigError(f"student.text_layer_ids has {len(layer_ids)} ids but student.text_layers is {text_layers}")
    text = StudentTextEncoder.from_teacher(teacher, layer_ids)
    spec = {
        "embed_dim": text.arch["embed_dim"],
        "image": {"backbone": image_backbone, "kwargs": dict(image_backbone_kwargs or {}), "pretrained": image_pretrained},
        "text": text.arch,
        "logit_scale": float(teacher.logit_scale.detach()),
    }
    student = StudentCLIP(spec)
    student.text.load_state_dict(text.state_dict())
    # the rebuilt spec must not try to download weights again when loaded from a checkpoint
    student.spec["image"]["pretrained"] = False
    logger.info("student text layers %s of the teacher's %d", layer_ids, n_teacher)
    return student


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
