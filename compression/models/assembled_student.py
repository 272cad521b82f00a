"""The MoTIS student of the assembled teacher: EfficientNet-Lite0 (ImageNet) for images, a 3-of-6-layer
copy of the teacher's MiniLM for texts, and a thinner shared encoder initialised from the teacher's.

Same interface as the teacher (and open_clip): ``encode_image(images, normalize)``,
``encode_text(token_ids, normalize)``, so evaluation, export and the app treat both alike.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from compression.models.assembled import (
    AssembledTeacher,
    ConseChannel,
    ConseHead,
    SharedEncoder,
    SharedEncoderConfig,
    image_grid_tokens,
    sentence_embedding,
)
from compression.models.student import select_text_layers
from formats.errors import FormatError
from formats.run_card import (  # export.assembled imports the name here
    ASSEMBLED_STUDENT,
    STUDENT_WEIGHTS,
    read_run_card,
)
from formats.tokenizer_files import VOCAB_FILE, WORDPIECE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssembledStudentConfig:
    image_tower: str = "efficientnet_lite0"  # ImageNet-initialised, frozen (see the README: cost of training it on a CPU)
    text_layers: int = 3  # of MiniLM's 6, evenly spaced, first and last kept
    shared_layers: int = 1  # of the teacher's 2: the text side must be >= 1.8x faster than the teacher's

    def to_dict(self) -> dict:
        return asdict(self)


def shrink_bert(model: nn.Module, keep: list[int]) -> nn.Module:
    """A copy of a Hugging Face BERT with only the encoder layers ``keep`` (in that order), weights copied.

    Embeddings and pooler are copied whole; the config's ``num_hidden_layers`` says ``len(keep)``.
    """
    n = len(model.encoder.layer)
    if not keep or any(not 0 <= i < n for i in keep):
        raise ValueError(f"layers {keep} do not fit a {n}-layer text model")
    small = copy.deepcopy(model)
    small.encoder.layer = nn.ModuleList([copy.deepcopy(model.encoder.layer[i]) for i in keep])
    small.config.num_hidden_layers = len(keep)
    return small


def shrink_shared(shared: SharedEncoder, layers: int) -> SharedEncoder:
    """A shared encoder with ``layers`` of the teacher's transformer layers (evenly spaced, the last
    always kept) and every other weight (input projections, modality and grid embeddings, final norm,
    projection, distillation head) copied."""
    keep = select_text_layers(shared.cfg.layers, layers)
    small = SharedEncoder(replace(shared.cfg, layers=layers))
    state = shared.state_dict()
    out = {}
    for k in small.state_dict():
        if k.startswith("layers.layers."):
            i = int(k.split(".")[2])
            src = k.replace(f"layers.layers.{i}.", f"layers.layers.{keep[i]}.", 1)
        else:
            src = k
        out[k] = state[src].clone()
    small.load_state_dict(out)
    return small


class AssembledStudent(nn.Module):
    """Lite0 image tower (frozen) + the image side of a distilled shared encoder; a shallow MiniLM + the
    text side of another copy of it.

    The two copies start equal (from the teacher's shared layers) and are then trained apart: MoTIS
    trains one tower at a time against a fixed partner (stage 2), which a tied shared layer would not
    allow, and on a device each tower runs alone anyway, so untying costs no speed.
    """

    def __init__(self, image_tower: nn.Module, text_model: nn.Module, tokenizer, shared: SharedEncoder,
                 cfg: AssembledStudentConfig, conse: ConseHead | None = None):
        super().__init__()
        self.cfg = cfg
        self.image_tower = image_tower.eval().requires_grad_(False)
        self.text_model = text_model
        self.tokenizer = tokenizer
        self.image_shared = shared
        self.text_shared = copy.deepcopy(shared)
        self.conse = conse  # None: the joint space alone (training; runs from before the channel)

    @property
    def embed_dim(self) -> int:
        """The output size: the joint space's, plus the text tower's width with a ConSE channel."""
        joint = self.image_shared.cfg.embed_dim
        return joint if self.conse is None else joint + int(self.conse.class_emb.shape[1])

    def train(self, mode: bool = True) -> AssembledStudent:
        super().train(mode)
        self.image_tower.eval()
        return self

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) normalised with mean = std = 0.5 -> (B, G*G, 1280) grid tokens."""
        return image_grid_tokens(self.image_tower.forward_features(images), self.image_shared.cfg.image_grid)

    def embed_image_tokens(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, G*G, 1280) cached grid tokens -> (B, D): the trainable image path."""
        return self.image_shared.embed(self.image_shared.image_states(tokens), normalize)

    def text_tokens(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = token_ids != self.tokenizer.pad_token_id
        states = self.text_model(input_ids=token_ids, attention_mask=mask.long()).last_hidden_state
        return states, mask

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, embed_dim); with a ConSE channel always unit-length."""
        fmap = self.image_tower.forward_features(images)
        joint = self.embed_image_tokens(image_grid_tokens(fmap, self.image_shared.cfg.image_grid), normalize)
        return joint if self.conse is None else self.conse.image(joint, self.image_tower.forward_head(fmap))

    def encode_text(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        states, mask = self.text_tokens(token_ids)
        joint = self.text_shared.embed(self.text_shared.text_states(states, mask), normalize)
        return joint if self.conse is None else self.conse.text(joint, states, mask)

    def fused_image(self, joint: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """What ``encode_image`` returns, from the joint embeddings and the tower's cached logits."""
        return joint if self.conse is None else self.conse.image(joint, logits)


CLASS_NAME_MAX_LENGTH = 32  # WordPiece tokens kept of a class description: 999 of 1000 fit (the longest has 35), as stage 1 cuts them


@torch.no_grad()
def attach_conse(model: AssembledStudent, channel: ConseChannel, class_names: list[str], batch_size: int = 128) -> None:
    """Give the trained student its ConSE channel: the class names embedded by its own text tower
    (mean-pooled last layer), so that both sides of the channel come from the model that ships."""
    was = model.training
    model.eval()
    rows = []
    for s in range(0, len(class_names), batch_size):
        ids = model.tokenizer(class_names[s : s + batch_size], padding=True, truncation=True,
                              max_length=CLASS_NAME_MAX_LENGTH, return_tensors="pt")["input_ids"]
        rows.append(sentence_embedding(*model.text_tokens(ids)))
    model.conse = ConseHead(channel, torch.cat(rows))
    model.train(was)


def student_from_teacher(teacher: AssembledTeacher, image_tower: nn.Module, cfg: AssembledStudentConfig) -> AssembledStudent:
    """The student initialised from the teacher: text layers and shared layers selected and copied."""
    n = len(teacher.text_model.encoder.layer)
    keep = select_text_layers(n, cfg.text_layers)
    logger.info("student text tower: MiniLM layers %s of %d; shared layers %d of %d", keep, n, cfg.shared_layers,
                teacher.shared.cfg.layers)
    text = shrink_bert(teacher.text_model, keep).train().requires_grad_(True)
    return AssembledStudent(image_tower, text, teacher.tokenizer, shrink_shared(teacher.shared, cfg.shared_layers), cfg)


def student_shared_config(teacher_cfg: SharedEncoderConfig, cfg: AssembledStudentConfig) -> SharedEncoderConfig:
    return replace(teacher_cfg, layers=cfg.shared_layers)


def load_assembled_student(run_dir) -> tuple[AssembledStudent, dict]:
    """The AssembledStudent of a ``--config clipart`` run folder, rebuilt from student.json + its safetensors
    alone (no weights packages: the frozen Lite0 tower's weights are in the safetensors too), in eval mode.

    Returns the student and student.json. Errors name the file (CheckpointError).
    """
    from pathlib import Path

    import timm
    from transformers import BertConfig, BertModel, BertTokenizer

    from compression.checkpoint import CheckpointError, load_weights
    from compression.models.pretrained_towers import EFFICIENTNET_LITE

    run_dir = Path(run_dir)
    card = read_run_card(run_dir, CheckpointError)
    cfg_path, meta = card.path, card.data
    if card.kind != ASSEMBLED_STUDENT:
        raise CheckpointError(f"{cfg_path}: kind {meta.get('kind')!r}, expected {ASSEMBLED_STUDENT!r}")
    try:
        cfg = AssembledStudentConfig(meta["image_tower"], int(meta["text_layers"]), int(meta["shared_layers"]))
        tower_arch = EFFICIENTNET_LITE[cfg.image_tower][0]
        shared = SharedEncoder(SharedEncoderConfig(**meta["shared"]))
        text = BertModel(BertConfig.from_dict(meta["text_config"]), add_pooling_layer=True)
        tok = meta["tokenizer"]
        conse = meta.get("conse")
        channel = None if conse is None else ConseChannel(float(conse["weight"]), int(conse["top"]))
        n_classes = None if conse is None else int(conse["classes"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: cannot rebuild the assembled student: {type(e).__name__}: {e}") from e
    try:
        files = card.tokenizer_files()
    except FormatError as e:
        raise CheckpointError(str(e)) from e
    if files is None or files.kind != WORDPIECE or files.vocabulary.name != VOCAB_FILE:
        raise CheckpointError(f"{cfg_path}: tokenizer {tok!r}, expected kind {WORDPIECE!r} with vocab {VOCAB_FILE!r}")
    # from_pretrained reads vocab.txt (transformers 5 takes a parsed vocabulary, not a path, in the constructor)
    tokenizer = BertTokenizer.from_pretrained(str(run_dir), local_files_only=True,
                                              do_lower_case=bool(tok.get("lowercase", True)))
    head = None if channel is None else ConseHead(channel, torch.zeros(n_classes, text.config.hidden_size))
    student = AssembledStudent(timm.create_model(tower_arch, pretrained=False), text, tokenizer, shared, cfg, head)
    holder = nn.ModuleDict({"student": student})
    holder.register_parameter("logit_scale", nn.Parameter(torch.zeros(())))
    load_weights(holder, run_dir / STUDENT_WEIGHTS)
    return student.eval(), meta
