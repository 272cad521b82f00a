"""Sizes, side-by-side speed, and the Markdown report shaped like the paper's tables."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from compression.data.captioned import CaptionedImages
from compression.embedding import tokenize_all
from compression.models.student import count_parameters
from compression.models.teacher import text_encoder
from compression.stages import PhaseContext, trim_tokens
from formats.atomic import atomic_write_bytes


class _TextTower(nn.Module):
    """The text half of an open_clip CLIP as its own module (for counting and saving)."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection


def disk_mb(module: nn.Module) -> float:
    """Size in MB (1e6 bytes) of the module's fp32 weights as a safetensors file (serialised in memory:
    a ViT-B/32 teacher's 600 MB are not written to disk just to be measured)."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    return len(safetensors_bytes(state)) / 1e6


def tower_sizes(teacher: nn.Module, student: nn.Module) -> dict[str, dict[str, float]]:
    towers = {
        "teacher_image": teacher.visual,
        "teacher_text": _TextTower(teacher),
        "student_image": student.visual,
        "student_text": student.text,
    }
    return {name: {"params": count_parameters(m), "disk_mb": disk_mb(m)} for name, m in towers.items()}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels: CUDA launches return at once, so a clock read without it times the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def _throughput(fn, x, iters: int) -> float:
    fn(x)  # warm-up
    synchronize(x.device)
    start = time.perf_counter()
    for _ in range(iters):
        fn(x)
    synchronize(x.device)
    return x.shape[0] * iters / (time.perf_counter() - start)


def measure_speed(
    teacher: nn.Module, student: nn.Module, split: CaptionedImages, ctx: PhaseContext, batch_size: int, iters: int
) -> dict[str, Any]:
    """Items/s of each encoder, teacher and student timed alternately in this process on the same inputs.

    Images: a batch of real test images, each tower's preprocessing (its input size may differ). Texts: real test captions, at the full context length and
    cut after the batch's longest caption (how both are run here), each like for like.
    """
    teacher.eval()
    student.eval()
    pictures = [split.images.load(i % len(split)) for i in range(batch_size)]
    images = torch.stack([ctx.transform(p) for p in pictures]).to(ctx.device)
    student_images = torch.stack([ctx.student_images()(p) for p in pictures]).to(ctx.device)
    texts, _ = split.flat_captions()
    tokens = tokenize_all(ctx.tokenizer, texts[:batch_size]).to(ctx.device)
    rounds = 3
    keys = ("teacher_image", "student_image", "teacher_text", "student_text", "teacher_text_actual", "student_text_actual")
    result: dict[str, list[float]] = {k: [] for k in keys}
    short = trim_tokens(tokens)
    teacher_text, student_text = text_encoder(teacher), text_encoder(student)
    for _ in range(rounds):  # interleave so that drift in machine load hits both alike
        result["teacher_image"].append(_throughput(teacher.encode_image, images, iters))
        result["student_image"].append(_throughput(student.encode_image, student_images, iters))
        result["teacher_text"].append(_throughput(teacher.encode_text, tokens, iters))
        result["student_text"].append(_throughput(student.encode_text, tokens, iters))
        result["teacher_text_actual"].append(_throughput(teacher_text, short, iters))
        result["student_text_actual"].append(_throughput(student_text, short, iters))
    best = {k: max(v) for k, v in result.items()}
    return {
        "items_per_s": best,
        "image_speedup": best["student_image"] / best["teacher_image"],
        "text_speedup": best["student_text"] / best["teacher_text"],
        "text_speedup_actual": best["student_text_actual"] / best["teacher_text_actual"],
        "actual_length": int(short.shape[1]),
        "context_length": int(tokens.shape[1]),
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "device": str(ctx.device),
    }


def _row(name: str, r: dict[str, float], ref: float | None) -> str:
    cells = [f"{r[k]:.1f}" for k in r if k.startswith("t2i")] + [f"{r[k]:.1f}" for k in r if k.startswith("i2t")]
    pct = f"{100 * r['rsum'] / ref:.1f}%" if ref else "-"
    return f"| {name} | " + " | ".join(cells) + f" | {r['rsum']:.1f} | {pct} |"


def retrieval_table(retrieval: dict[str, dict[str, float]], ks: list[int]) -> str:
    ref = retrieval.get("teacher_finetuned", retrieval.get("teacher_zero_shot"))["rsum"]
    head = "| model | " + " | ".join(f"T→I R@{k}" for k in ks) + " | " + " | ".join(f"I→T R@{k}" for k in ks) + " | RSUM | % of FT teacher |"
    sep = "|" + "---|" * (2 * len(ks) + 3)
    names = [
        ("student_untrained", "untrained student (baseline)"),
        ("teacher_zero_shot", "teacher, zero-shot"),
        ("teacher_finetuned", "teacher, fine-tuned"),
        ("student", "student (this run)"),
    ]
    rows = [_row(label, retrieval[key], ref) for key, label in names if key in retrieval]
    return "\n".join([head, sep, *rows])


def size_speed_table(sizes: dict[str, dict[str, float]], speed: dict[str, Any]) -> str:
    ips, ctx, actual = speed["items_per_s"], speed["context_length"], speed["actual_length"]

    def size_cells(name: str, ref: str | None) -> str:
        params = sizes[name]["params"]
        share = f" ({100 * params / sizes[ref]['params']:.0f}%)" if ref else ""
        return f"{params / 1e6:.2f}{share} | {sizes[name]['disk_mb']:.1f}"

    rows = [
        ("teacher image", size_cells("teacher_image", None), ips["teacher_image"], ""),
        ("student image", size_cells("student_image", "teacher_image"), ips["student_image"], f"{speed['image_speedup']:.2f}x"),
        (f"teacher text, full {ctx}-token context", size_cells("teacher_text", None), ips["teacher_text"], ""),
        (f"student text, full {ctx}-token context", size_cells("student_text", "teacher_text"), ips["student_text"],
         f"{speed['text_speedup']:.2f}x"),
        (f"teacher text, {actual} tokens (longest caption in batch)", " | ", ips["teacher_text_actual"], ""),
        (f"student text, {actual} tokens", " | ", ips["student_text_actual"], f"{speed['text_speedup_actual']:.2f}x"),
    ]
    lines = ["| encoder | params (M) | disk MB (fp32) | items/s | student speed-up |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {cells} | {rate:.0f} | {up} |" for name, cells, rate, up in rows]
    return "\n".join(lines)


def write_report(metrics: dict[str, Any], path: Path, cfg) -> None:
    split = metrics["test_split"]
    speed = metrics["speed"]
    text = f"""# Compression run `{cfg.name}`

Teacher `{cfg.teacher.model}` (pretrained: {cfg.teacher.pretrained or "trained from scratch"}), student image
backbone `{cfg.student.image_backbone}`, student text layers {metrics["student_text_layers"]} of the teacher's.
Device {metrics["device"]}, {metrics["torch_threads"]} torch threads.

## Retrieval on the test split ({split["images"]} images, {split["captions"]} captions)

{retrieval_table(metrics["retrieval"], cfg.eval.ks)}

## Size and speed (measured side by side in this run, batch {speed["batch_size"]}, {speed["device"]})

{size_speed_table(metrics["sizes"], speed)}

## Time per phase (s)

| phase | seconds |
|---|---|
""" + "\n".join(f"| {k} | {v:.0f} |" for k, v in metrics["seconds"].items()) + "\n"
    atomic_write_bytes(path, text.encode())
