"""`python -m compression.run --config clipart`: the real-pictures run, end to end on a CPU.

The assembled teacher (seed 002: frozen EfficientNet-Lite2 + frozen MiniLM-L6 + a trained shared
encoder) on the Open Clip Art Library, then MoTIS into a student (EfficientNet-Lite0 + 3 of MiniLM's
6 layers + one shared layer per tower), then ConSE, teacher and student on the clip art test split and
the real-photo check. Images are decoded once, tower features computed once (both cached under the
cache folder); the run directory keeps the teacher and each finished phase, so re-running the same
command resumes after the last finished phase.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compression.assembled_features import cached_features
from compression.assembled_student_training import (
    PhaseConfig,
    Stage2Loss,
    StudentData,
    stage1_image,
    stage1_text,
    stage2,
    student_image_table,
    student_text_table,
)
from compression.assembled_training import LogitScale, SharedTrainConfig, embed_features, train_shared
from compression.checkpoint import atomic_write_json, load_weights, save_weights
from compression.config import ConfigError
from compression.conse import (
    cached_class_name_embeddings,
    choose_channel_weight,
    class_name_token_states,
    classifier_class_names,
    conse_embeddings,
    imagenet_class_names,
)
from compression.data.captioned import CaptionedImages
from compression.data.decoded_images import decoded_captioned
from compression.data.openclipart import OPENCLIPART_ROOT, load_openclipart
from compression.data.real_photos import real_photo_check, unpaired_real_photos
from compression.data.stage1_images import STAGE1_ONLY, stage1_extra_sets
from compression.evaluate import recall_at_k
from compression.models.assembled import ConseChannel, SharedEncoder, SharedEncoderConfig, fuse
from compression.models.assembled_student import (
    AssembledStudent,
    AssembledStudentConfig,
    attach_conse,
    student_from_teacher,
)
from compression.models.pretrained_towers import create_efficientnet_lite, create_minilm, minilm_path
from formats.run_card import (
    ASSEMBLED_STUDENT,
    EMBED_DIM,
    KIND,
    PREPROCESS,
    RUN_CARD,
    STUDENT_WEIGHTS,
    TOKENIZER,
)
from formats.tokenizer_files import VOCAB_FILE, WORDPIECE

logger = logging.getLogger(__name__)

DECODE_SIZE = 260  # the largest tower's input size (Lite2): smaller towers resize from it
TEXT_MAX_LENGTH = 64


@dataclass
class TeacherSection:
    image_tower: str = "efficientnet_lite2"
    grid: int = 3
    width: int = 256
    layers: int = 2
    heads: int = 4
    embed_dim: int = 256
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    distill_weight: float = 1.0
    conse_weight: float | None = None  # the ConSE channel's joint share (compression.models.assembled.ConseChannel);
    # None: chosen on the clip art validation split from conse.CHANNEL_WEIGHTS; 1.0: no channel


@dataclass
class ClipartRunConfig:
    pipeline: str = "clipart"  # selects this pipeline in compression.run
    name: str = "clipart"  # run directory name under --runs-dir
    seed: int = 0
    threads: int = 1  # torch CPU threads for training (0 = torch's choice): the steps are small, and on a shared
    # 2-core machine two threads made them several times slower; feature extraction uses all cores
    clipart_root: str = str(OPENCLIPART_ROOT)
    limit: int | None = None  # at most this many drawings per split (quick runs, tests)
    real_photos: bool = True  # unpaired real photos in stage 1 and the 19-photo check
    decode_workers: int = 2  # processes decoding the PNGs on first use
    onnx_features: bool = True  # frozen towers' features through ONNX Runtime (several times faster than eager on a CPU)
    conse_top: int = 10
    teacher: TeacherSection = field(default_factory=TeacherSection)
    student_image_tower: str = "efficientnet_lite0"
    student_text_layers: int = 3  # of MiniLM's 6, evenly spaced, first and last kept
    student_shared_layers: int = 1  # of the teacher's 2
    stage1_views: int = 1  # augmented views of every training drawing and unpaired photo in stage 1's image stream
    stage1_synthetic: int = 500  # synthetic benchmark scenes (unpaired) in stage 1's image stream
    stage1_image: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=20, lr=1e-3))
    # 2 epochs: with 6, validation RSUM peaked at epoch 2 (211.7, 230.4, 223.4, 219.1, 222.7, 223.1) and the rest
    # cost ~10 min of the default run (README)
    stage1_text: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=2e-4))
    stage2_image: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=10, lr=3e-4))
    stage2_text: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=6, lr=1e-4))
    stage2: Stage2Loss = field(default_factory=Stage2Loss)


PHASES = ("stage1_image", "stage1_text", "stage2_image", "stage2_text")


def load_clipart_config(path: str | Path, overrides: list[str] | None = None) -> ClipartRunConfig:
    """The YAML config (or bundled name) with ``key.path=value`` overrides, checked."""
    from compression.config import load_typed_config

    cfg = load_typed_config(ClipartRunConfig, path, overrides)
    for name in PHASES:
        if getattr(cfg, name).batch_size < 2:
            raise ConfigError(f"{name}.batch_size: contrastive losses need >= 2")
    w = cfg.teacher.conse_weight
    if w is not None and not 0.0 < w <= 1.0:
        raise ConfigError(f"teacher.conse_weight: {w} is not in (0, 1] (1 = no ConSE channel; null = chosen on validation)")
    for key in ("stage1_views", "stage1_synthetic"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: {getattr(cfg, key)} must be >= 0")
    return cfg


def _limit(data: CaptionedImages, n: int | None) -> CaptionedImages:
    if n is None or n >= len(data):
        return data
    return CaptionedImages(data.images.subset(range(n)), data.captions[:n], data.names[:n])


def _ids(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", truncation=True, max_length=TEXT_MAX_LENGTH, return_tensors="pt")["input_ids"]


class _Progress:
    """The pipeline's steps as one bar (the phases' own bars run beneath it)."""

    def __init__(self, steps: list[str], enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=len(steps), desc="clipart run", disable=not enabled, position=0)

    def step(self, name: str) -> None:
        self.bar.set_postfix_str(name)
        self.bar.update(1)


def run_clipart(cfg: ClipartRunConfig, run_dir: Path, cache_dir: Path, restart: bool = False,
                progress: bool = True) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    cfg_dict = dataclasses.asdict(cfg)
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    saved = run_dir / "config.json"
    if saved.is_file() and json.loads(saved.read_text()) != cfg_dict:
        from compression.pipeline import RunDirError

        raise RunDirError(f"{run_dir} holds a run of another config; pass --restart or another --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(saved, cfg_dict)
    bar = _Progress(["data", "teacher features", "teacher", "student features", *PHASES, "evaluation"], progress)
    seconds: dict[str, float] = {}

    # data: clip art splits, the real-photo check, unpaired real photos; decoded once
    t0 = time.perf_counter()
    feat_cache = cache_dir / "assembled"
    corpus = load_openclipart(Path(cfg.clipart_root), progress=progress)
    sets = {name: _limit(corpus.splits[name], cfg.limit) for name in ("train", "val", "test")}
    if cfg.real_photos:
        sets["real-photo check"] = real_photo_check()
        photos = unpaired_real_photos()
        sets["unpaired photos"] = CaptionedImages(photos, [["photo"]] * len(photos), [str(p) for p in photos.paths])
    sets = {name: decoded_captioned(feat_cache / "decoded", name.split()[0], data, DECODE_SIZE, cfg.decode_workers, progress)
            for name, data in sets.items()}
    sets |= stage1_extra_sets(sets, cfg.stage1_views, cfg.stage1_synthetic, DECODE_SIZE, cfg.seed, progress)
    seconds["data"] = time.perf_counter() - t0
    bar.step("data")

    t0 = time.perf_counter()
    text_tower = create_minilm()
    tc = cfg.teacher
    lite2 = create_efficientnet_lite(tc.image_tower)
    t_feats = {name: cached_features(feat_cache, name.split()[0], data, (lite2, text_tower), tc.image_tower, tc.grid, progress, cfg.onnx_features)
               for name, data in sets.items()}
    seconds["teacher features"] = time.perf_counter() - t0
    bar.step("teacher features")

    # the teacher: trained once per run directory
    t0 = time.perf_counter()
    feature_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    enc_cfg = SharedEncoderConfig(lite2.num_features, text_tower.model.config.hidden_size, tc.grid, tc.width, tc.layers,
                                  tc.heads, tc.embed_dim)
    shared, t_scale = SharedEncoder(enc_cfg), LogitScale()
    teacher_file = run_dir / "teacher" / "shared.safetensors"
    if teacher_file.is_file():
        load_weights(nn.ModuleDict({"shared": shared, "logit_scale": t_scale}), teacher_file)
        logger.info("teacher from %s", teacher_file)
    else:
        train_cfg = SharedTrainConfig(tc.epochs, tc.batch_size, tc.lr, distill_weight=tc.distill_weight, seed=cfg.seed)
        t_scale, history = train_shared(shared, t_feats["train"], t_feats["val"], train_cfg, progress)
        teacher_file.parent.mkdir(parents=True, exist_ok=True)
        save_weights(nn.ModuleDict({"shared": shared, "logit_scale": t_scale}), teacher_file)
        atomic_write_json(run_dir / "teacher" / "config.json", {
            "kind": "assembled", "image_tower": tc.image_tower, "text_tower": "all-MiniLM-L6-v2",
            "shared": enc_cfg.to_dict(), "train": train_cfg.to_dict(), "history": history})
    shared.eval()
    # the ConSE channel beside the joint space: its weight chosen on validation (clip art: no photo is looked at)
    class_emb = cached_class_name_embeddings(feat_cache, text_tower)
    val_img, val_txt = embed_features(shared, t_feats["val"])
    val_conse = conse_embeddings(t_feats["val"].image_logits, class_emb, cfg.conse_top)
    weight, weight_rsum = choose_channel_weight(val_img, val_txt, val_conse, t_feats["val"].text_sentence,
                                                t_feats["val"].text_owner)
    if tc.conse_weight is not None:
        weight = tc.conse_weight
    channel = ConseChannel(weight, cfg.conse_top) if weight < 1.0 else None
    logger.info("ConSE channel: joint share %s (validation RSUM by share: %s)", weight, weight_rsum)
    seconds["teacher"] = time.perf_counter() - t0
    bar.step("teacher")

    # student-side inputs: Lite0 grid tokens (frozen backbone) and WordPiece ids
    t0 = time.perf_counter()
    torch.set_num_threads(feature_threads)
    lite0 = create_efficientnet_lite(cfg.student_image_tower)
    s_feats = {name: cached_features(feat_cache, name.split()[0], data, (lite0, text_tower), cfg.student_image_tower,
                                     tc.grid, progress, cfg.onnx_features)
               for name, data in sets.items()}
    seconds["student features"] = time.perf_counter() - t0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bar.step("student features")

    def student_data(name: str) -> StudentData:
        t_img, t_txt = embed_features(shared, t_feats[name])
        texts, owner = sets[name].flat_captions()
        return StudentData(s_feats[name].image_tokens, _ids(text_tower.tokenizer, texts), torch.as_tensor(owner), t_img, t_txt)

    train, val = student_data("train"), student_data("val")

    from compression.models.assembled import AssembledTeacher

    teacher = AssembledTeacher(lite2, text_tower, shared)
    scfg = AssembledStudentConfig(cfg.student_image_tower, cfg.student_text_layers, cfg.student_shared_layers)
    student = student_from_teacher(teacher, lite0, scfg)
    s_scale = nn.Parameter(t_scale.log_scale.detach().clone())
    holder = nn.ModuleDict({"student": student})
    holder.register_parameter("logit_scale", s_scale)
    t_scale_value = float(t_scale().detach())

    # stage 1's unpaired streams: every training drawing and real photo, their augmented views, synthetic scenes;
    # training captions + ImageNet class names
    images1 = [train.image_tokens]
    t_images1 = [train.t_image]
    for name in sets:
        if name == "unpaired photos" or name.startswith(STAGE1_ONLY):
            extra, _ = embed_features(shared, t_feats[name])
            images1.append(s_feats[name].image_tokens)
            t_images1.append(extra)
    cls_states, cls_mask = class_name_token_states(text_tower)
    with torch.no_grad():
        cls_emb = shared.embed(shared.text_states(cls_states, cls_mask))
    ids1 = torch.cat([train.token_ids, _ids(text_tower.tokenizer, imagenet_class_names())])
    t_texts1 = torch.cat([train.t_text, cls_emb])

    histories: dict[str, list] = {}
    for i, phase in enumerate(PHASES):
        t0 = time.perf_counter()
        done = run_dir / "phases" / f"{phase}.safetensors"
        if done.is_file():
            load_weights(holder, done)
            histories[phase] = json.loads(done.with_suffix(".json").read_text())
            logger.info("%s: finished before, loaded from %s", phase, done)
        else:
            pc, seed = getattr(cfg, phase), cfg.seed + i
            temp = cfg.stage2.distill_temperature
            if phase == "stage1_image":
                h = stage1_image(student, torch.cat(images1), torch.cat(t_images1), val, pc, temp, seed, progress)
            elif phase == "stage1_text":
                h = stage1_text(student, ids1, t_texts1, val, pc, temp, seed, progress)
            else:
                h = stage2(student, s_scale, t_scale_value, phase.split("_")[1], train, val, pc, cfg.stage2, seed, progress)
            student.requires_grad_(False)
            done.parent.mkdir(parents=True, exist_ok=True)
            save_weights(holder, done)
            atomic_write_json(done.with_suffix(".json"), h)
            histories[phase] = h
        seconds[phase] = time.perf_counter() - t0
        bar.step(phase)

    # evaluation: ConSE, teacher, student; each model in its joint space alone and with its ConSE channel
    t0 = time.perf_counter()
    if channel is not None:
        attach_conse(student, channel, classifier_class_names(lite0))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in ("test", "real-photo check"):
        if name not in sets:
            continue
        sd = student_data(name)
        s_img = student_image_table(student, sd.image_tokens)
        s_txt = student_text_table(student, sd.token_ids)  # with the channel when the student has one
        conse_img = conse_embeddings(t_feats[name].image_logits, class_emb, cfg.conse_top)
        rows = {f"ConSE (T={cfg.conse_top})": recall_at_k(conse_img, t_feats[name].text_sentence, t_feats[name].text_owner)}
        if channel is None:
            rows["assembled teacher"] = recall_at_k(sd.t_image, sd.t_text, sd.owner)
            rows["student"] = recall_at_k(s_img, s_txt, sd.owner)
        else:  # each model's joint space alone, then as it ships (with the channel)
            rows["assembled teacher, joint space"] = recall_at_k(sd.t_image, sd.t_text, sd.owner)
            rows["assembled teacher"] = recall_at_k(fuse(sd.t_image, conse_img, weight),
                                                    fuse(sd.t_text, t_feats[name].text_sentence, weight), sd.owner)
            rows["student, joint space"] = recall_at_k(s_img, F.normalize(s_txt[:, : s_img.shape[1]], dim=-1), sd.owner)
            rows["student"] = recall_at_k(student.fused_image(s_img, s_feats[name].image_logits), s_txt, sd.owner)
        results[name] = rows
    fit = {}  # how well the student learnt what it was trained on: the teacher's embeddings, the training pairs
    for name in ("train", "test"):
        sd = train if name == "train" else student_data(name)
        s_img = student_image_table(student, sd.image_tokens)
        s_txt = F.normalize(student_text_table(student, sd.token_ids)[:, : s_img.shape[1]], dim=-1)  # joint part
        fit[name] = {
            "image_teacher_top1": _top1(s_img, sd.t_image), "text_teacher_top1": _top1(s_txt, sd.t_text),
            "rsum": recall_at_k(s_img, s_txt, sd.owner)["rsum"],
        }
    seconds["evaluation"] = time.perf_counter() - t0
    bar.step("evaluation")
    seconds["total"] = time.perf_counter() - t_start

    save_student(run_dir, student, s_scale, scfg)
    params = {
        "teacher": {"image_tower": _count(lite2), "text_tower": _count(text_tower.model), "shared": _count(shared)},
        "student": {"image_tower": _count(lite0), "text_tower": _count(student.text_model),
                    "image_shared": _count(student.image_shared), "text_shared": _count(student.text_shared)},
    }
    metrics = {"conse_channel": {"weight": weight, "top": cfg.conse_top, "chosen_on": "clip art validation",
                                 "validation_rsum_by_weight": weight_rsum},
               "results": results, "student_fit": fit, "seconds": seconds, "params": params, "histories": histories, "counts": corpus.counts}
    atomic_write_json(run_dir / "metrics.json", metrics)
    (run_dir / "report.md").write_text(format_report(metrics))
    return metrics


def _top1(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Share of rows whose nearest teacher embedding (same modality) is their own: what stage 1 optimises."""
    return float(((student @ teacher.T).argmax(1) == torch.arange(len(student))).float().mean())


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def save_student(run_dir: Path, student: AssembledStudent, scale: nn.Parameter, cfg: AssembledStudentConfig) -> None:
    """``student.safetensors`` + ``student.json`` (what rebuilds it) + the tokenizer's ``vocab.txt``."""
    holder = nn.ModuleDict({"student": student})
    holder.register_parameter("logit_scale", scale)
    save_weights(holder, run_dir / STUDENT_WEIGHTS)
    shutil.copyfile(minilm_path() / VOCAB_FILE, run_dir / VOCAB_FILE)
    atomic_write_json(run_dir / RUN_CARD, {
        KIND: ASSEMBLED_STUDENT, **cfg.to_dict(), "shared": student.image_shared.cfg.to_dict(),
        EMBED_DIM: student.embed_dim,
        **({} if student.conse is None else {"conse": {**student.conse.channel.to_dict(),
                                                       "classes": int(student.conse.class_emb.shape[0])}}),
        "text_config": student.text_model.config.to_dict(),
        PREPROCESS: {"image_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        TOKENIZER: {"kind": WORDPIECE, "vocab": VOCAB_FILE, "lowercase": True, "max_length": TEXT_MAX_LENGTH},
    })


def format_report(metrics: dict[str, Any]) -> str:
    cols = ["t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "rsum"]
    lines = [f"| set | model | {' | '.join(cols)} |", "|" + "---|" * (len(cols) + 2)]
    for split, models in metrics["results"].items():
        for model, m in models.items():
            lines.append(f"| {split} | {model} | " + " | ".join(f"{m[c]:.1f}" for c in cols) + " |")
    s = metrics["seconds"]
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in s.items()))
    return "\n".join(lines) + "\n"
