"""The whole run, phase by phase, resumable: data, teacher, stage 1, teacher fine-tuning, stage 2, evaluation.

A run directory holds ``state.json`` (phases done, metrics, config digest) and, per finished phase,
the weights it produced under ``checkpoints/``. A phase in progress checkpoints every epoch to
``checkpoints/<phase>.partial.pt``. Re-running the same command skips finished phases and
resumes the unfinished one; nothing is ever half-written (every file is written aside and renamed).
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from compression.checkpoint import (
    TEACHER_CONFIG,
    TEACHER_WEIGHTS,
    atomic_write_json,
    link_or_save,
    load_weights,
    read_json,
    save_student,
    save_weights,
)
from compression.config import ConfigError, RunConfig, config_digest, config_to_dict
from compression.data.captioned import CaptionedImages
from compression.data.loading import Datasets, load_datasets
from compression.data.transforms import image_transform
from compression.distributed import Dist, init_distributed
from compression.embedding import encode_images, encode_tokens, tokenize_all
from compression.evaluate import recall_at_k, recall_over_folds
from compression.models.student import (
    StudentCLIP,
    StudentTextEncoder,
    backbone_preprocess,
    count_parameters,
    create_backbone,
    create_student,
)
from compression.models.teacher import (
    build_tokenizer,
    create_teacher,
    freeze,
    resolve_teacher_name,
    teacher_preprocess_from_config,
    text_encoder,
    write_run_tokenizer_files,
)
from compression.stages import PhaseContext, stage1_image, stage1_text, stage2_student, train_clip
from formats.errors import UserError
from formats.run_card import PREPROCESS, TOKENIZER

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


class RunDirError(UserError, ValueError):
    """A run directory that cannot be resumed with this config; says what to do instead."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


@dataclass(frozen=True)
class Phase:
    """One training phase: its name (state.json, checkpoint files), the model it trains, its step, its towers."""

    name: str
    trains: str  # "student" or "teacher": whose weights the phase writes
    step: str  # "stage1" (intra-modal distillation), "teacher-ft" (teacher fine-tuning) or "stage2"
    towers: str  # "image", "text" or "both"


PHASES: dict[str, Phase] = {p.name: p for p in (
    Phase("stage1-image", "student", "stage1", "image"),
    Phase("stage1-text", "student", "stage1", "text"),
    Phase("teacher-ft-image", "teacher", "teacher-ft", "image"),
    Phase("teacher-ft-text", "teacher", "teacher-ft", "text"),
    Phase("teacher-ft-joint", "teacher", "teacher-ft", "both"),
    Phase("stage2-image", "student", "stage2", "image"),
    Phase("stage2-text", "student", "stage2", "text"),
    Phase("stage2-joint", "student", "stage2", "both"),
)}


def planned_phases(cfg: RunConfig) -> list[str]:
    """Phase names in order, as the config switches them on or off."""
    phases = []
    if cfg.stage1.enabled:
        phases += ["stage1-image", "stage1-text"] if cfg.student.train_text else ["stage1-image"]
    if cfg.stage2.finetune_teacher:
        phases += ["teacher-ft-image", "teacher-ft-text"] if cfg.stage2.teacher_sequential else ["teacher-ft-joint"]
    if not cfg.student.train_text:
        phases += ["stage2-image"]
    else:
        phases += ["stage2-image", "stage2-text"] if cfg.stage2.sequential else ["stage2-joint"]
    return phases


def _run_stage1(phase: Phase, student: nn.Module, teacher: nn.Module, data: Datasets, cfg: RunConfig,
                ctx: PhaseContext) -> dict:
    if phase.towers == "image":
        return stage1_image(student, teacher, data.unpaired_images, cfg.stage1.image, cfg.stage1.temperature, ctx)
    return stage1_text(student, teacher, data.unpaired_texts, cfg.stage1.text, cfg.stage1.temperature, ctx)


def _run_teacher_ft(phase: Phase, student: nn.Module, teacher: nn.Module, data: Datasets, cfg: RunConfig,
                    ctx: PhaseContext) -> dict:
    return train_clip(phase.name, teacher, data.train, phase.towers, cfg.stage2.teacher, ctx,
                      cfg.stage2.epoch_over, cfg.stage2.infonce_direction_weight)


def _run_stage2(phase: Phase, student: nn.Module, teacher: nn.Module, data: Datasets, cfg: RunConfig,
                ctx: PhaseContext) -> dict:
    opt = cfg.stage2.student_text if phase.towers == "text" else cfg.stage2.student_image
    return stage2_student(phase.name, student, teacher, data.train, phase.towers, opt, cfg.stage2,
                          cfg.stage1.temperature, ctx, data.val)


# what runs each step: (phase, student, teacher, data, config, context) -> the phase's losses
PHASE_RUNNERS: dict[str, Callable[[Phase, nn.Module, nn.Module, Datasets, RunConfig, PhaseContext], dict]] = {
    "stage1": _run_stage1,
    "teacher-ft": _run_teacher_ft,
    "stage2": _run_stage2,
}


@dataclass
class RunState:
    """Contents of state.json: what is done, where its weights are, metrics so far."""

    config_digest: str
    done: list[str] = field(default_factory=list)
    teacher_file: str | None = None  # latest teacher weights written by a phase (relative to the run dir)
    student_file: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        if not path.is_file():
            return None
        return cls(**read_json(path, "run state"))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.__dict__)


def teacher_cache_dir(cfg: RunConfig, cache_dir: Path) -> Path:
    """Where a from-scratch teacher is trained once and reused: keyed by everything it depends on."""
    key = config_digest({"teacher": cfg.teacher, "data": cfg.data, "seed": cfg.seed})
    return Path(cache_dir) / "teachers" / f"{cfg.teacher.model}-{key}"


def get_teacher(cfg: RunConfig, teacher: nn.Module, data: Datasets, ctx_base: dict, cache_dir: Path) -> tuple[nn.Module, dict]:
    """The teacher before any fine-tuning: ``teacher`` as created (pretrained weights), or trained
    from scratch once and cached."""
    teacher = teacher.to(ctx_base["device"])
    info: dict[str, Any] = {"model": resolve_teacher_name(cfg.teacher.model, cfg.teacher.pretrained), "pretrained": cfg.teacher.pretrained}
    if cfg.teacher.pretrained is None:
        folder = teacher_cache_dir(cfg, cache_dir)
        weights = folder / TEACHER_WEIGHTS
        if weights.is_file():
            logger.info("teacher: using the cached from-scratch teacher %s", weights)
            load_weights(teacher, weights)
            info.update(read_json(folder / TEACHER_CONFIG, "teacher config").get("pretrain", {}))
        else:
            logger.info("teacher: training %s from scratch on %d pairs (cached in %s)", cfg.teacher.model, len(data.pretrain), folder)
            start = time.time()
            ctx = PhaseContext(checkpoint=folder / "pretrain.partial.pt", **ctx_base)
            losses = train_clip("teacher-pretrain", teacher, data.pretrain, "both", cfg.teacher.pretrain, ctx)
            info["pretrain"] = {"losses": losses, "seconds": time.time() - start, "pairs": len(data.pretrain)}
            if ctx.dist.is_main:
                save_weights(teacher, weights)
                atomic_write_json(folder / TEACHER_CONFIG, {"model": cfg.teacher.model, "pretrain": info["pretrain"]})
                (folder / "pretrain.partial.pt").unlink(missing_ok=True)
            ctx.dist.barrier()
    return freeze(teacher.to(ctx_base["device"])), info


@torch.no_grad()
def evaluate_model(
    model: nn.Module, split: CaptionedImages, ctx: PhaseContext, ks: list[int], batch_size: int,
    transform: Callable | None = None, fold_size: int | None = None,
) -> dict[str, float]:
    """recall@K both ways + RSUM of any model with encode_image / encode_text (texts at actual length).

    ``transform``: the model's image preprocessing (default: the teacher's, ``ctx.transform``).
    ``fold_size``: when the split holds at least two folds of that many images, the result gains
    ``folds`` = the recall averaged over consecutive folds (COCO's 1K protocol on its 5K test split).
    """
    model.eval()
    texts, owner = split.flat_captions()
    img = encode_images(model.encode_image, split.images, transform or ctx.transform, batch_size, ctx.device, ctx.num_workers)
    txt = encode_tokens(text_encoder(model), tokenize_all(ctx.tokenizer, texts), batch_size, ctx.device)
    out: dict[str, Any] = recall_at_k(img, txt, owner, ks)
    if fold_size and len(split) >= 2 * fold_size:
        out["folds"] = recall_over_folds(img, txt, owner, ks, fold_size)
    return out


def run_pipeline(cfg: RunConfig, run_dir: Path, cache_dir: Path, restart: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every phase of ``cfg`` in ``run_dir``; returns the metrics written to metrics.json.

    Under torchrun every rank runs this function: the training phases are data-parallel (see
    compression.distributed), rank 0 alone writes the run directory and evaluates, and the other
    ranks return an empty dict.
    """
    dist, device = init_distributed(resolve_device(cfg.device))
    return _run(cfg, Path(run_dir), Path(cache_dir), restart, progress, device, dist)


def _run(cfg: RunConfig, run_dir: Path, cache_dir: Path, restart: bool, progress: bool, device: torch.device, dist: Dist) -> dict[str, Any]:
    from compression.report import measure_speed, tower_sizes, write_report

    main = dist.is_main
    digest = config_digest(cfg)
    state_path = run_dir / STATE_FILE
    if restart and run_dir.exists() and main:
        shutil.rmtree(run_dir)
    dist.barrier()
    state = RunState.load(state_path)
    if state is not None and state.config_digest != digest:
        raise RunDirError(
            f"run directory {run_dir} was made with a different config (digest {state.config_digest}, now {digest}); "
            f"pass --restart to start it over, or --name to use another directory"
        )
    state = state or RunState(config_digest=digest)
    dist.barrier()  # every rank has read state.json before rank 0 writes it
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        atomic_write_json(run_dir / "config.json", config_to_dict(cfg))
        state.save(state_path)

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    progress = progress and main
    teacher_name = resolve_teacher_name(cfg.teacher.model, cfg.teacher.pretrained)
    s = cfg.student
    teacher = None
    if cfg.teacher.pretrained is not None:  # weights first: weights that cannot be had fail in seconds, before the data is read
        teacher = create_teacher(cfg.teacher.model, cfg.teacher.pretrained)
        if s.image_pretrained:
            create_backbone(s.image_backbone, s.image_pretrained, s.image_backbone_kwargs)
    t0 = time.time()
    if not main:  # rank 0 generates (or checks) the cached data first; the others then read it
        dist.barrier()
    data = load_datasets(cfg.data, cache_dir, need_pretrain=cfg.teacher.pretrained is None, progress=progress)
    if main:
        dist.barrier()
    logger.info(
        "data: train %d images / %d captions, test %d / %d, unpaired %d images + %d texts (%.0fs)",
        len(data.train), sum(map(len, data.train.captions)), len(data.test), sum(map(len, data.test.captions)),
        len(data.unpaired_images), len(data.unpaired_texts), time.time() - t0,
    )
    pre, context_length = teacher_preprocess_from_config(teacher_name, cfg.teacher.pretrained)
    tokenizer = build_tokenizer(teacher_name, context_length)
    ctx_base = {
        "transform": image_transform(pre), "tokenizer": tokenizer, "device": device, "seed": cfg.seed,
        "num_workers": cfg.num_workers, "progress": progress, "dist": dist, "precision": cfg.precision,
    }
    ks, bs, folds = cfg.eval.ks, cfg.eval.batch_size, cfg.eval.fold_size

    if teacher is None:
        # A from-scratch teacher starts from the second random draw after the seed: the offline numbers in the
        # README were made so (a first model used to be built to read the preprocessing), and they reproduce.
        create_teacher(cfg.teacher.model, None)
        teacher = create_teacher(cfg.teacher.model, None)
    t0 = time.time()
    teacher, teacher_info = get_teacher(cfg, teacher, data, ctx_base, cache_dir)
    state.seconds.setdefault("teacher-pretrain", time.time() - t0)
    torch.manual_seed(cfg.seed)  # the same student init whether the teacher was trained now or read from cache
    text_layers, layer_ids = (s.text_layers, s.text_layer_ids) if s.train_text else (len(teacher.transformer.resblocks), None)
    student = create_student(teacher, s.image_backbone, text_layers, s.image_pretrained, s.image_backbone_kwargs, layer_ids).to(device)
    # each tower gets its own backbone's preprocessing: pretrained student weights expect theirs (e.g. mean = std
    # = 0.5 for the ImageNet-21k ViTs); a student trained from random weights shares the teacher's
    student_pre = backbone_preprocess(student.visual.backbone, s.image_backbone_kwargs) if s.image_pretrained else pre
    ctx_base["student_transform"] = image_transform(student_pre)
    ctx_eval = PhaseContext(checkpoint=None, **ctx_base)
    student_tf = ctx_eval.student_images()

    if "teacher_zero_shot" not in state.metrics and main:
        state.metrics["teacher_zero_shot"] = evaluate_model(teacher, data.test, ctx_eval, ks, bs, fold_size=folds)
        state.metrics["student_untrained"] = evaluate_model(student, data.test, ctx_eval, ks, bs, student_tf, folds)
        state.save(state_path)
    dist.barrier()
    if state.teacher_file:
        load_weights(teacher, run_dir / state.teacher_file)
    if state.student_file:
        load_weights(student, run_dir / state.student_file)

    for name in planned_phases(cfg):
        if name in state.done:
            continue
        phase = PHASES[name]
        ctx = PhaseContext(checkpoint=run_dir / "checkpoints" / f"{name}.partial.pt", **ctx_base)
        start = time.time()
        if phase.step == "stage2" and not s.train_text:  # text fixed: the fine-tuned teacher's whole text tower
            student.text.load_state_dict(StudentTextEncoder.from_teacher(teacher, student.text.arch["layer_ids"]).state_dict())
        logger.info("phase %s", name)
        losses = PHASE_RUNNERS[phase.step](phase, student, teacher, data, cfg, ctx)
        changed_teacher = phase.trains == "teacher"
        out = f"checkpoints/{name}.safetensors"
        state.done.append(name)
        state.seconds[name] = time.time() - start
        state.metrics.setdefault("losses", {})[name] = losses
        if not main:  # the weights are the same on every rank (DDP); rank 0 writes them
            if changed_teacher:
                state.teacher_file = out
            else:
                state.student_file = out
            continue
        save_weights(teacher if changed_teacher else student, run_dir / out)
        old = state.teacher_file if changed_teacher else state.student_file
        if changed_teacher:
            state.teacher_file = out
        else:
            state.student_file = out
        state.save(state_path)
        if old and old != out and not cfg.keep_phase_checkpoints:
            (run_dir / old).unlink(missing_ok=True)
        ctx.checkpoint.unlink(missing_ok=True)

    dist.barrier()
    if not main:
        return {}
    if cfg.stage2.finetune_teacher and "teacher_finetuned" not in state.metrics:
        state.metrics["teacher_finetuned"] = evaluate_model(teacher, data.test, ctx_eval, ks, bs, fold_size=folds)
    state.metrics["student"] = evaluate_model(student, data.test, ctx_eval, ks, bs, student_tf, folds)
    state.metrics["student_val"] = evaluate_model(student, data.val, ctx_eval, ks, bs, student_tf)
    state.save(state_path)

    sizes = tower_sizes(teacher, student)
    speed = measure_speed(teacher, student, data.test, ctx_eval, cfg.eval.speed_batch_size, cfg.eval.speed_iters)
    metrics = {
        "config_digest": digest,
        "test_split": {"images": len(data.test), "captions": sum(map(len, data.test.captions))},
        "retrieval": {k: v for k, v in state.metrics.items() if k not in ("losses",)},
        "losses": state.metrics.get("losses", {}),
        "sizes": sizes,
        "speed": speed,
        "seconds": state.seconds,
        "teacher": teacher_info,
        "student_text_layers": student.text.arch["layer_ids"],
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    save_student(
        student, run_dir,
        {PREPROCESS: student_pre.to_dict(), TOKENIZER: write_run_tokenizer_files(teacher_name, context_length, run_dir),
         "teacher": teacher_name, "metrics": metrics["retrieval"].get("student")},
        written=run_dir / state.student_file if state.student_file else None,
    )
    link_or_save(teacher, run_dir / state.teacher_file if state.teacher_file else None, run_dir / TEACHER_WEIGHTS)
    atomic_write_json(
        run_dir / TEACHER_CONFIG,
        {"model": teacher_name, "pretrained": cfg.teacher.pretrained, "model_config": open_clip.get_model_config(teacher_name),
         "finetuned": cfg.stage2.finetune_teacher, "preprocess": pre.to_dict()},
    )
    atomic_write_json(run_dir / "metrics.json", metrics)
    write_report(metrics, run_dir / "report.md", cfg)
    return metrics


def load_teacher(run_dir: Path) -> nn.Module:
    """The (fine-tuned) teacher of a finished run, rebuilt from run_dir/teacher.json + weights."""
    meta = read_json(Path(run_dir) / TEACHER_CONFIG, "teacher config")
    teacher = create_teacher(meta["model"], None)
    load_weights(teacher, Path(run_dir) / TEACHER_WEIGHTS)
    return freeze(teacher)


def student_summary(student: StudentCLIP) -> str:
    return f"image {count_parameters(student.visual) / 1e6:.2f}M params, text {count_parameters(student.text) / 1e6:.2f}M"
