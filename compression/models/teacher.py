"""The teacher: an open_clip CLIP, pretrained (paper configs) or built from a small config (offline)."""
from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from torch import nn

from compression.config import ConfigError
from compression.models.text_tower import text_tower_forward
from compression.models.weights import WeightsUnavailableError, weights_failure
from formats.atomic import atomic_write_bytes
from formats.preprocess import Preprocess
from formats.run_card import CONTEXT_LENGTH, OPEN_CLIP_TOKENIZER, TOKENIZER_MODEL
from formats.tokenizer_files import BPE, BPE_FILE, FILE_KEY

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
_registered = False


def register_model_configs() -> None:
    """Make the JSON architectures in compression/model_configs known to open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


def resolve_teacher_name(model_name: str, pretrained: str | None) -> str:
    """The open_clip model name that matches the weights: ``ViT-B-32`` + ``openai`` -> ``ViT-B-32-quickgelu``.

    OpenAI's CLIP weights were trained with QuickGELU; open_clip's plain ``ViT-B-32`` config builds
    nn.GELU and only warns when given them (open_clip issue #771). A pretrained tag whose config says
    ``quick_gelu`` gets the ``-quickgelu`` architecture, so the teacher (and the student text tower
    cut from it, and a teacher rebuilt later from its recorded name) computes what was trained.
    """
    register_model_configs()
    if pretrained is None or model_name.endswith("-quickgelu"):
        return model_name
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    if tag_cfg.get("quick_gelu", False) and not (open_clip.get_model_config(model_name) or {}).get("quick_gelu", False):
        quick = f"{model_name}-quickgelu"
        if quick not in open_clip.list_models():
            raise ValueError(f"teacher {model_name!r} with {pretrained!r} weights needs QuickGELU but open_clip has no {quick!r}")
        logger.debug("teacher: %s weights were trained with QuickGELU: using %s", pretrained, quick)
        return quick
    return model_name


def create_teacher(model_name: str, pretrained: str | None = None) -> nn.Module:
    """An open_clip CLIP; ``pretrained=None`` gives random weights (to be trained from scratch).

    ``pretrained`` is an open_clip tag (downloaded on first use) or a local weights file. The
    architecture follows the weights (see ``resolve_teacher_name``). Weights that cannot be fetched
    raise WeightsUnavailableError, one line saying how to pass a local file instead.
    """
    register_model_configs()
    known = open_clip.list_models()
    if model_name not in known:
        raise ConfigError(
            f"unknown teacher model {model_name!r}; try one of open_clip.list_models() "
            f"(e.g. 'ViT-B-32') or add a JSON to {MODEL_CONFIG_DIR}"
        )
    if pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags and not Path(pretrained).is_file():
            raise WeightsUnavailableError(
                f"teacher.pretrained: {pretrained!r} is neither a pretrained tag of {model_name!r} ({tags}) nor a file"
            )
    name = resolve_teacher_name(model_name, pretrained)
    try:
        model = open_clip.create_model(name, pretrained=pretrained, load_weights=pretrained is not None)
    except (RuntimeError, OSError) as e:
        if pretrained is None or not (isinstance(e, OSError) or "Failed to download" in str(e) or Path(pretrained).is_file()):
            raise
        source = (open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get("hf_hub") or pretrained
        raise weights_failure(f"teacher weights {model_name}/{pretrained}", source, e,
                              "--set teacher.pretrained=/path/to/open_clip_model.safetensors") from None
    if getattr(model, "text_pool_type", "argmax") != "argmax":
        raise ValueError(f"teacher {model_name!r}: only argmax (EOT) text pooling is supported")
    return model


def teacher_preprocess(model: nn.Module) -> Preprocess:
    """The eval preprocessing the teacher was built with (image size, mean, std)."""
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return Preprocess(image_size=size, mean=mean, std=std)


def teacher_preprocess_from_config(model_name: str, pretrained: str | None) -> tuple[Preprocess, int]:
    """(preprocessing, text context length) of a teacher, read from open_clip's configs without building it."""
    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ConfigError(f"unknown teacher model {model_name!r}; try one of open_clip.list_models()")
    size = cfg["vision_cfg"].get("image_size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    tag = (open_clip.get_pretrained_cfg(model_name, pretrained) or {}) if pretrained else {}
    mean = tuple(tag.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(tag.get("std", open_clip.OPENAI_DATASET_STD))
    return Preprocess(image_size=size, mean=mean, std=std), int(cfg["text_cfg"].get("context_length", 77))


def build_tokenizer(model_name: str, context_length: int | None = None):
    """The open_clip tokenizer of ``model_name``: list[str] -> (B, context_length) int64 token ids."""
    register_model_configs()
    return open_clip.get_tokenizer(model_name, context_length=context_length)


def write_run_tokenizer_files(model_name: str, context_length: int, run_dir: Path) -> dict:
    """Copy ``model_name``'s BPE merges file next to the run's student.json; returns the card's tokenizer
    section (``formats.run_card``): ``{kind: "open_clip", model, context_length, bpe_file}``, without
    ``bpe_file`` for a tokenizer that is not open_clip's BPE (it has no such file to carry)."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    section = {"kind": OPEN_CLIP_TOKENIZER, TOKENIZER_MODEL: model_name, CONTEXT_LENGTH: context_length}
    if isinstance(build_tokenizer(model_name, context_length), SimpleTokenizer):
        atomic_write_bytes(Path(run_dir) / BPE_FILE, Path(default_bpe()).read_bytes())
        section[FILE_KEY[BPE]] = BPE_FILE
    return section


def freeze(module: nn.Module) -> nn.Module:
    """Frozen teacher convention: no gradients, eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def set_trainable_towers(model: nn.Module, image: bool, text: bool) -> None:
    """Unfreeze only the chosen towers of an open_clip CLIP (logit_scale follows either)."""
    model.requires_grad_(False)
    if image:
        model.visual.requires_grad_(True)
    if text:
        for name, p in model.named_parameters():
            if not name.startswith("visual.") and name != "logit_scale":
                p.requires_grad_(True)
    model.logit_scale.requires_grad_(image or text)


def encode_text_at_length(model: nn.Module, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``model.encode_text`` for token sequences cut shorter than the context length.

    Same computation as open_clip's CLIP.encode_text (``compression.models.text_tower.text_tower_forward``)
    with the positional embedding and causal mask sliced to the sequence length: the causal mask makes
    the EOT output independent of the padding after it, so the result equals the full-length one while
    padding costs nothing. Models without
    that structure (CustomTextCLIP) fall back to their own encode_text on the full context.
    """
    if getattr(model, "accepts_short_text", False):  # the student encodes at any length natively
        return model.encode_text(text, normalize=normalize)
    if not hasattr(model, "transformer") or getattr(model, "text_pool_type", "argmax") != "argmax":
        return model.encode_text(_pad_to_context(model, text), normalize=normalize)
    length = text.shape[1]
    mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
    return text_tower_forward(text, model.token_embedding, model.positional_embedding, model.transformer,
                              model.ln_final, model.text_projection, mask, normalize)


def text_encoder(model: nn.Module):
    """A callable (B, L) token ids -> (B, D) for any model here, teacher or student, at any L <= context."""
    return lambda text: encode_text_at_length(model, text)


def _pad_to_context(model: nn.Module, text: torch.Tensor) -> torch.Tensor:
    ctx = getattr(model, "context_length", None) or text.shape[1]
    if text.shape[1] >= ctx:
        return text
    return torch.nn.functional.pad(text, (0, ctx - text.shape[1]))
