"""Run configuration: typed dataclasses filled from YAML, unknown keys rejected by name."""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from formats.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"


def default_cache_dir() -> Path:
    """Where generated data and from-scratch teachers are cached by default: $XDG_CACHE_HOME/pocketclip."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pocketclip"
# `python -m compression.run` with no --config: the offline default (the clip art pipeline, runs/offline)
RUN_DEFAULT_CONFIG = CONFIG_DIR / "offline.yaml"
# the open_clip pipeline's schema default (load_config(None)): the synthetic benchmark
DEFAULT_CONFIG = CONFIG_DIR / "synthetic.yaml"


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema; the message names the key."""


# A field added after runs and caches were keyed on config digests: config_digest leaves it out while it
# holds its default, so every existing config keeps its digest (its runs resume, its caches stay valid).
ADDED_AFTER_DIGESTS = {"digest": "omit-when-default"}


@dataclass
class SyntheticDataConfig:
    seed: int = 0  # everything below is a pure function of this seed
    image_size: int = 32  # rendered side length in pixels (images are stored at this size)
    n_pretrain: int = 12000  # "web" pairs with terse alt-text captions, for the from-scratch teacher
    n_unpaired_images: int = 12000  # stage-1 image stream (no captions used)
    n_unpaired_texts: int = 12000  # stage-1 text stream (no images used)
    n_train: int = 6000  # stage-2 paired training images (5 captions each)
    n_val: int = 500
    n_test: int = 1000  # evaluation pool: n_test images, 5 * n_test captions
    captions_per_image: int = 5


@dataclass
class DataConfig:
    source: str = "synthetic"  # "synthetic" (generated offline) or "files" (the paths below)
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    # --- source: files ---
    paired: str | None = None  # Karpathy dataset_*.json or a TSV of image_path<TAB>caption
    image_root: str | None = None  # folder the paired file's image paths are relative to
    train_splits: list[str] = field(default_factory=lambda: ["train", "restval"])
    val_split: str = "val"
    test_split: str = "test"
    unpaired_images: str | None = None  # stage 1: a folder of images (searched recursively)
    unpaired_texts: str | None = None  # stage 1: a text file, one sentence a line
    pretrain_pairs: str | None = None  # teacher pre-training pairs, only if the teacher is trained from scratch
    max_unpaired: int | None = None  # cap on each stage-1 stream (None: all)


@dataclass
class OptimConfig:
    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1  # the LR floor: the cosine decays from lr to min_lr_ratio * lr (0: to zero)
    accum_steps: int = 1  # gradient accumulation: batch_size is the global batch, run in this many micro-batches
    # AdamW's moments, as CLIP and open_clip train: beta2 0.98 (not PyTorch's 0.999) and eps 1e-6 keep
    # large-batch contrastive training stable
    adam_beta1: float = field(default=0.9, metadata=ADDED_AFTER_DIGESTS)
    adam_beta2: float = field(default=0.98, metadata=ADDED_AFTER_DIGESTS)
    adam_eps: float = field(default=1e-6, metadata=ADDED_AFTER_DIGESTS)
    # every step's gradients are clipped to this global L2 norm (0: no clipping)
    grad_clip_norm: float = field(default=1.0, metadata=ADDED_AFTER_DIGESTS)


@dataclass
class TeacherConfig:
    model: str = "synthclip-tiny"  # open_clip model name, or a JSON in compression/model_configs
    pretrained: str | None = None  # open_clip pretrained tag, e.g. "openai"; None: train from scratch
    pretrain: OptimConfig = field(
        default_factory=lambda: OptimConfig(epochs=12, lr=2e-3, weight_decay=0.1, warmup_steps=50)
    )  # only used when pretrained is None


@dataclass
class StudentConfig:
    image_backbone: str = "vit_tiny_patch16_224"  # any timm model name
    image_backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model
    image_pretrained: bool | str = False  # timm's pretrained weights for the backbone (true), or a local weights file
    text_layers: int = 4  # how many teacher text transformer layers the student keeps
    text_layer_ids: list[int] | None = None  # explicit layer ids; None: evenly spaced, first and last kept
    train_text: bool = True  # false: the paper's image-encoder ablation: the text tower is the (fine-tuned) teacher's, untrained


@dataclass
class Stage1Config:
    enabled: bool = True  # ablation "w/o stage 1": students start from their initialisation
    temperature: float = 0.05  # of the intra-modal contrastive distillation loss
    image: OptimConfig = field(default_factory=OptimConfig)
    text: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class Stage2Config:
    sequential: bool = True  # ablation "w/o sequential": the student towers trained jointly
    finetune_teacher: bool = True  # fine-tune the teacher towers before distilling
    teacher_sequential: bool = True  # fine-tune the teacher's towers one at a time (false: jointly)
    epoch_over: str = "images"  # "images": an epoch is every image once with one of its captions; "captions": every pair once
    select_best: bool = True  # keep the epoch with the best validation RSUM of each student phase (the paper's selection)
    teacher: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=3, lr=2e-4))
    student_image: OptimConfig = field(default_factory=OptimConfig)
    student_text: OptimConfig = field(default_factory=OptimConfig)
    infonce_weight: float = 1.0
    infonce_direction_weight: float = 0.5  # weight of each direction (i->t, t->i): 0.5 = their mean, 1.0 = their sum (MoTIS eq. 1)
    kd_weight: float = 1.0  # KL(teacher matching || student's); 0 is the ablation "w/o KD"
    kd_temperature: float = 1.0  # divides both logits before the softmax of the KD term
    distill_weight: float = 1.0  # the stage-1 contrastive distillation term, kept in stage 2
    hard_negatives: int = 4  # hard negatives per sample from FAISS; 0 is the ablation "w/o HN"
    hard_negative_pool: int = 32  # mine among the top-N neighbours, skipping true matches
    hard_negative_refresh: int = 1  # re-mine every N epochs as the encoder changes


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    batch_size: int = 256
    speed_batch_size: int = 64  # batch used to time encoders side by side
    speed_iters: int = 10
    fold_size: int = 1000  # also report recall averaged over folds of this many test images (COCO 1K: 5 folds of 5K)


@dataclass
class RunConfig:
    name: str = "synthetic"  # run directory name under runs/
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    num_workers: int = 0  # DataLoader workers
    threads: int | None = None  # torch CPU threads; None: torch's default
    precision: str = "fp32"  # "fp32", or "bf16": autocast of the training forward passes (GPUs with bf16)
    keep_phase_checkpoints: bool = False  # keep every phase's weights (the ablation reuses them)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return _from_dict(tp, value, key + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}; known keys here: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    cfg = _from_dict(RunConfig, data)
    validate(cfg)
    return cfg


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    node[parts[-1]] = value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "image_backbone_kwargs":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config of the open_clip pipeline (default: the synthetic benchmark) and apply ``key.path=value`` overrides.

    Overrides are parsed as YAML scalars (``stage2.kd_weight=0``, ``student.text_layers=6``).
    A YAML file may name a ``base:`` config (relative to itself) whose values it overrides.
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = _read_yaml(path)
    if data.get("pipeline", "clip") != "clip":
        raise ConfigError(f"config {str(path)!r} is for the {data['pipeline']!r} pipeline, not the open_clip one: "
                          f"run it with `python -m compression.run --config {path}`")
    _apply_overrides(data, overrides)
    return config_from_dict(data)


def _apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> None:
    """Set each ``key.path=value`` override (the value parsed as a YAML scalar) in ``data``."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from None
        _set_path(data, key.strip(), value)


def read_config_dict(path: str | Path) -> dict[str, Any]:
    """A config file (or bundled name) as a plain mapping, ``base:`` resolved, no schema applied."""
    return _read_yaml(Path(path))


def load_typed_config(cls: type, path: str | Path, overrides: list[str] | None = None) -> Any:
    """Like ``load_config`` for another schema: ``cls`` is a dataclass, unknown keys rejected by name."""
    data = _read_yaml(Path(path))
    _apply_overrides(data, overrides)
    return _from_dict(cls, data)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        named = CONFIG_DIR / f"{path}.yaml"
        if named.is_file():
            path = named
        else:
            known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
            raise ConfigError(f"config file {str(path)!r} not found; bundled configs: {known}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("base", None)
    if base is not None:
        data = _merge(_read_yaml((path.parent / base).resolve()), data)
    return data


def validate(cfg: RunConfig) -> None:
    """Value checks the type system cannot express; each error names its key."""
    if cfg.data.source not in ("synthetic", "files"):
        raise ConfigError(f"data.source: expected 'synthetic' or 'files', got {cfg.data.source!r}")
    if cfg.data.source == "files" and not cfg.data.paired:
        raise ConfigError("data.paired: required when data.source is 'files'")
    if cfg.teacher.pretrained is None and cfg.data.source == "files" and not cfg.data.pretrain_pairs:
        raise ConfigError("data.pretrain_pairs: required to train a teacher from scratch on files")
    if cfg.student.text_layers < 1:
        raise ConfigError(f"student.text_layers: must be >= 1, got {cfg.student.text_layers}")
    if not cfg.eval.ks or any(k < 1 for k in cfg.eval.ks):
        raise ConfigError(f"eval.ks: must be positive integers, got {cfg.eval.ks}")
    s2 = cfg.stage2
    if s2.epoch_over not in ("images", "captions"):
        raise ConfigError(f"stage2.epoch_over: expected 'images' or 'captions', got {s2.epoch_over!r}")
    if s2.infonce_direction_weight <= 0:
        raise ConfigError(f"stage2.infonce_direction_weight: must be > 0, got {s2.infonce_direction_weight}")
    if cfg.eval.fold_size < 1:
        raise ConfigError(f"eval.fold_size: must be >= 1, got {cfg.eval.fold_size}")
    for name in ("infonce_weight", "kd_weight", "distill_weight"):
        if getattr(s2, name) < 0:
            raise ConfigError(f"stage2.{name}: must be >= 0, got {getattr(s2, name)}")
    if s2.hard_negatives < 0 or (s2.hard_negatives and s2.hard_negative_pool < s2.hard_negatives):
        raise ConfigError(
            f"stage2.hard_negative_pool ({s2.hard_negative_pool}) must be >= stage2.hard_negatives "
            f"({s2.hard_negatives}) >= 0"
        )
    for key, opt in (
        ("teacher.pretrain", cfg.teacher.pretrain),
        ("stage1.image", cfg.stage1.image),
        ("stage1.text", cfg.stage1.text),
        ("stage2.teacher", cfg.stage2.teacher),
        ("stage2.student_image", cfg.stage2.student_image),
        ("stage2.student_text", cfg.stage2.student_text),
    ):
        if opt.batch_size < 2:
            raise ConfigError(f"{key}.batch_size: contrastive losses need >= 2, got {opt.batch_size}")
        if not 0 <= opt.min_lr_ratio <= 1:
            raise ConfigError(f"{key}.min_lr_ratio: must be in [0, 1], got {opt.min_lr_ratio}")
        if opt.epochs < 0 or opt.lr <= 0:
            raise ConfigError(f"{key}: epochs must be >= 0 and lr > 0, got {opt.epochs}, {opt.lr}")
        if opt.accum_steps < 1 or opt.batch_size < 2 * opt.accum_steps:
            raise ConfigError(
                f"{key}.accum_steps: must be >= 1 with at least 2 rows per micro-batch, got {opt.accum_steps} "
                f"for batch_size {opt.batch_size}"
            )
    if cfg.precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision: expected 'fp32' or 'bf16', got {cfg.precision!r}")


def config_digest(obj: Any) -> str:
    """Stable short hash of a config (or part of one), for cache keys."""
    import hashlib

    return hashlib.sha256(json.dumps(_digest_view(obj), sort_keys=True).encode()).hexdigest()[:16]


def _digest_view(obj: Any) -> Any:
    """``dataclasses.asdict`` (dicts and lists walked too), less ADDED_AFTER_DIGESTS fields at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _digest_view(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata == ADDED_AFTER_DIGESTS and getattr(obj, f.name) == f.default)}
    if isinstance(obj, dict):
        return {k: _digest_view(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_digest_view(v) for v in obj]
    return obj
