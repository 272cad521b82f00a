"""The assembled teacher (seed 002, "Leveraging pretrained unimodal models for efficient image-text
retrieval"): a pretrained image tower and a pretrained text tower, frozen, joined by a randomly
initialised *shared* encoder (the same transformer layers run on both modalities' token features)
and one projection into the joint space. A distillation head asks the image side to keep predicting
the frozen image model's own pooled features, so alignment does not wash them out.

The towers' outputs are what the shared encoder sees: EfficientNet-Lite's last feature map pooled
to a small grid (image tokens) and MiniLM's last-layer token states (text tokens); the training
loop can therefore run on features cached once (compression/assembled_features.py).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compression.models.pretrained_towers import SentenceEncoder, mean_pool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedEncoderConfig:
    """Sizes of the shared part; the tower widths come from the towers."""

    image_dim: int = 1280  # EfficientNet-Lite's head channels
    text_dim: int = 384  # MiniLM-L6's width
    image_grid: int = 3  # the feature map is average-pooled to grid x grid image tokens
    width: int = 256  # the shared transformer's width (a 10-epoch CPU run fits in ~6 min; 384 not measured)
    layers: int = 2  # shared transformer layers (both modalities run the same ones)
    heads: int = 4
    embed_dim: int = 256  # joint embedding size
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class SharedEncoder(nn.Module):
    """Tower token features of either modality -> joint embedding, through shared layers.

    Each modality has its own input projection and a learned modality embedding; everything after
    that (transformer layers, final norm, projection) is one set of weights.
    """

    def __init__(self, cfg: SharedEncoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.image_in = nn.Linear(cfg.image_dim, w)
        self.text_in = nn.Linear(cfg.text_dim, w)
        self.image_pos = nn.Parameter(torch.zeros(cfg.image_grid**2, w))
        self.modality = nn.Parameter(torch.zeros(2, w))
        layer = nn.TransformerEncoderLayer(
            w, cfg.heads, 4 * w, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.proj = nn.Linear(w, cfg.embed_dim, bias=False)
        self.distill_head = nn.Linear(w, cfg.image_dim)  # predicts the frozen image features
        nn.init.normal_(self.image_pos, std=0.02)
        nn.init.normal_(self.modality, std=0.02)

    def _pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.layers(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        return self.norm((x * m).sum(1) / m.sum(1).clamp_min(1.0))

    def image_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, G*G, image_dim) grid tokens -> (B, width) pooled shared states."""
        x = self.image_in(tokens) + self.image_pos + self.modality[0]
        return self._pool(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))

    def text_states(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, text_dim) token states, (B, L) bool mask of real tokens -> (B, width)."""
        return self._pool(self.text_in(tokens) + self.modality[1], mask)

    def embed(self, states: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.proj(states)
        return F.normalize(z, dim=-1) if normalize else z


@dataclass(frozen=True)
class ConseChannel:
    """A zero-shot ConSE channel beside the trained joint space (Norouzi et al., 2014).

    The embedding is ``[sqrt(w) * joint, sqrt(1 - w) * conse]`` on both sides, each part unit-length,
    so a dot product is ``w * joint_similarity + (1 - w) * conse_similarity`` and the whole is unit-length.
    On the image side the ConSE part is the probability-weighted mix of the ImageNet class names'
    sentence embeddings over the image tower's own top-``top`` classes; on the text side it is the text
    tower's mean-pooled sentence embedding. The joint space is trained on clip art only; the ImageNet
    classifier saw photographs: the mix carries what the joint space never learnt (measured in the README).
    """

    weight: float = 0.7  # w: the joint part's share of the similarity; chosen on validation by the pipeline
    top: int = 10  # ConSE's T

    def __post_init__(self):
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"ConSE channel weight {self.weight}: must be in (0, 1]")
        if self.top < 1:
            raise ValueError(f"ConSE channel top {self.top}: must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def sentence_embedding(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) token states, (B, L) mask -> (B, D) mean-pooled, L2-normalised (sentence-transformers' way)."""
    return F.normalize(mean_pool(states, mask), dim=-1)


def conse_mix(logits: torch.Tensor, class_emb: torch.Tensor, top: int) -> torch.Tensor:
    """(N, C) class logits, (C, D) class-name embeddings -> (N, D) L2-normalised ConSE embeddings.

    Softmax probabilities, kept on each row's top-``top`` classes (renormalised over them), times the
    class embeddings: a masked matrix product rather than a gather, so that every runtime the student
    ships on (ONNX, ExecuTorch, Core ML) runs it as a plain matmul.
    """
    probs = logits.float().softmax(-1)
    kth = probs.topk(top, dim=-1).values[..., -1:]
    kept = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    kept = kept / kept.sum(-1, keepdim=True)
    return F.normalize(kept.to(class_emb.dtype) @ class_emb, dim=-1)  # softmax in fp32, the mix in the model's dtype


def fuse(joint: torch.Tensor, conse: torch.Tensor, weight: float) -> torch.Tensor:
    """The joint embedding and the ConSE one, each unit-length, joined as ConseChannel says."""
    return torch.cat([F.normalize(joint, dim=-1) * weight**0.5, conse * (1.0 - weight) ** 0.5], dim=-1)


class ConseHead(nn.Module):
    """The ConSE channel of a model: its weight and top-T, and the class names' embeddings made by the
    model's own text tower (a buffer, saved with the weights)."""

    def __init__(self, channel: ConseChannel, class_emb: torch.Tensor):
        super().__init__()
        self.channel = channel
        self.register_buffer("class_emb", class_emb.detach().float().clone())

    def image(self, joint: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return fuse(joint, conse_mix(logits, self.class_emb, self.channel.top), self.channel.weight)

    def text(self, joint: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return fuse(joint, sentence_embedding(states, mask), self.channel.weight)


def image_grid_tokens(feature_map: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, grid*grid, C): the feature map average-pooled to a grid, row-major."""
    return F.adaptive_avg_pool2d(feature_map, grid).flatten(2).transpose(1, 2)


class AssembledTeacher(nn.Module):
    """Frozen image tower + frozen text tower + trainable shared encoder, with open_clip's interface:
    ``encode_image(images, normalize)`` and ``encode_text(token_ids, normalize)``.

    images: (B, 3, S, S) normalised as the image tower expects; token_ids: (B, L) int64 WordPiece
    ids from the text tower's tokenizer, 0 = padding. Both return (B, embed_dim).
    """

    def __init__(self, image_tower: nn.Module, text_tower: SentenceEncoder, shared: SharedEncoder,
                 conse: ConseHead | None = None):
        super().__init__()
        self.image_tower = image_tower.eval().requires_grad_(False)
        self.text_model = text_tower.model.eval().requires_grad_(False)
        self.tokenizer = text_tower.tokenizer
        self.shared = shared
        self.conse = conse  # None: the joint space alone
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), as CLIP starts

    def train(self, mode: bool = True) -> AssembledTeacher:
        super().train(mode)
        self.image_tower.eval()  # frozen towers stay in eval mode (BatchNorm statistics, dropout)
        self.text_model.eval()
        return self

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return image_grid_tokens(self.image_tower.forward_features(images), self.shared.cfg.image_grid)

    def text_tokens(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = token_ids != self.tokenizer.pad_token_id
        states = self.text_model(input_ids=token_ids, attention_mask=mask.long()).last_hidden_state
        return states, mask

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, D); with a ConSE channel always unit-length (both parts are)."""
        fmap = self.image_tower.forward_features(images)
        joint = self.shared.embed(self.shared.image_states(image_grid_tokens(fmap, self.shared.cfg.image_grid)), normalize)
        return joint if self.conse is None else self.conse.image(joint, self.image_tower.forward_head(fmap))

    def encode_text(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        states, mask = self.text_tokens(token_ids)
        joint = self.shared.embed(self.shared.text_states(states, mask), normalize)
        return joint if self.conse is None else self.conse.text(joint, states, mask)

    def tokenize(self, texts: list[str], max_length: int = 64) -> torch.Tensor:
        """(B, L) int64 ids, padded with 0 to the longest, truncated at ``max_length``."""
        return self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")[
            "input_ids"
        ]
