"""Quality section: retrieval quality against size and speed, read from the compression run (no measuring).

The paper's Tables 1 and 3 on this run's benchmark: recall@1/5/10 in both directions and RSUM of the
teacher (zero-shot and fine-tuned) and the student, next to each model's parameters, fp32 disk
size and the encoder speed measured side by side in the run (``<run>/metrics.json``, written by
``compression.pipeline``), plus one row per finished ablation variant (``<runs>/ablation/*/metrics.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bench.common import SkipSection, display_path, md_table, new_figure, read_model_info, save_figure

logger = logging.getLogger(__name__)

# retrieval key in metrics.json -> (label, the towers its size and speed are those of)
MODELS = {
    "teacher_zero_shot": ("teacher, zero-shot", "teacher"),
    "teacher_finetuned": ("teacher, fine-tuned", "teacher"),
    "student_untrained": ("student, untrained (floor)", "student"),
    "student": ("student (this run)", "student"),
}


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    for key in ("retrieval", "sizes", "speed"):
        if key not in metrics:
            raise ValueError(f"{path} has no {key!r}: not a metrics.json written by compression.pipeline")
    return metrics


def run_dir_of(model: Path) -> Path:
    """The compression run whose metrics.json describes ``model`` (itself, or a bundle's source)."""
    info = read_model_info(model)
    if info.run_dir is None:
        raise SkipSection(
            f"bundle {model} names no run directory with a metrics.json (its manifest's "
            f"source.checkpoint is missing or gone): pass the run directory as --model"
        )
    if not (info.run_dir / "metrics.json").is_file():
        raise SkipSection(f"{info.run_dir} has no metrics.json: the compression run has not finished")
    return info.run_dir


def _ablation_label(folder: str) -> str:
    from compression.ablation import VARIANTS, slug

    names = {slug(name): name for name in VARIANTS}
    return names.get(folder, folder)


def _model_row(
    label: str, retrieval: dict[str, float], metrics: dict[str, Any], towers: str, source: str
) -> dict[str, Any]:
    sizes, ips = metrics["sizes"], metrics["speed"]["items_per_s"]
    return {
        "label": label,
        "source": source,
        "retrieval": retrieval,
        "params": sizes[f"{towers}_image"]["params"] + sizes[f"{towers}_text"]["params"],
        "params_image": sizes[f"{towers}_image"]["params"],
        "params_text": sizes[f"{towers}_text"]["params"],
        "disk_mb": sizes[f"{towers}_image"]["disk_mb"] + sizes[f"{towers}_text"]["disk_mb"],
        "images_per_s": ips.get(f"{towers}_image"),
        "texts_per_s": ips.get(f"{towers}_text_actual", ips.get(f"{towers}_text")),
    }


def run(quick: bool, work_dir: Path, model: Path) -> dict[str, Any]:
    run_dir = run_dir_of(model)
    metrics = _read_metrics(run_dir / "metrics.json")
    rows = [
        _model_row(label, metrics["retrieval"][key], metrics, towers, display_path(run_dir / "metrics.json"))
        for key, (label, towers) in MODELS.items()
        if key in metrics["retrieval"]
    ]
    ablation = run_dir.parent / "ablation"
    missing = []
    for path in sorted(ablation.glob("*/metrics.json")) if ablation.is_dir() else []:
        variant = _read_metrics(path)
        row = _model_row(
            f"student, {_ablation_label(path.parent.name)}",
            variant["retrieval"]["student"],
            variant,
            "student",
            display_path(path),
        )
        row["images_per_s"] = row["texts_per_s"] = None  # the student's architecture; timed in another run
        rows.append(row)
    if ablation.is_dir():
        missing = [
            p.name for p in sorted(ablation.iterdir()) if p.is_dir() and not (p / "metrics.json").exists()
        ]
    speed = metrics["speed"]
    return {
        "run_dir": display_path(run_dir),
        "rows": rows,
        "unfinished_ablations": missing,
        "test_split": metrics.get("test_split"),
        "teacher": (metrics.get("teacher") or {}).get("model"),
        "speed_setup": {k: speed.get(k) for k in ("batch_size", "threads", "device", "actual_length")},
    }


def _ks(retrieval: dict[str, float]) -> list[int]:
    return sorted({int(k.split("@")[1]) for k in retrieval if k.startswith("t2i_R@")})


def to_markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    ks = _ks(rows[0]["retrieval"])
    teacher = next((r for r in rows if r["label"].startswith("teacher, fine")), rows[0])
    head = (
        ["model"]
        + [f"T→I R@{k}" for k in ks]
        + [f"I→T R@{k}" for k in ks]
        + ["RSUM", "params (M)", "disk MB (fp32)", "images/s", "texts/s"]
    )
    table = []
    for r in rows:
        rec = r["retrieval"]
        table.append(
            [r["label"]]
            + [f"{rec[f't2i_R@{k}']:.1f}" for k in ks]
            + [f"{rec[f'i2t_R@{k}']:.1f}" for k in ks]
            + [
                f"{rec['rsum']:.1f}",
                f"{r['params'] / 1e6:.2f}",
                f"{r['disk_mb']:.1f}",
                f"{r['images_per_s']:.0f}" if r["images_per_s"] else "-",
                f"{r['texts_per_s']:.0f}" if r["texts_per_s"] else "-",
            ]
        )
    split = result.get("test_split") or {}
    setup = result["speed_setup"]
    text = (
        f"### Retrieval vs size and speed (`{result['run_dir']}`, test split: {split.get('images', '?')} "
        "images, "
        f"{split.get('captions', '?')} captions)\n\n"
        + md_table(head, table)
        + "\n\nRecall in %; speeds measured side by side in the compression run "
        f"(batch {setup['batch_size']}, "
        f"{setup['threads']} threads, {setup['device']}; texts at {setup['actual_length']} tokens). Ablation "
        f"variants share the student's architecture; their own runs' speeds, taken under other loads, are "
        f"not compared."
    )
    student = next((r for r in rows if r["label"] == MODELS["student"][0]), None)
    if student is not None:
        findings = [
            (
                f"- The student has {student['params'] / teacher['params']:.0%} of the teacher's parameters "
                f"({student['params_image'] / teacher['params_image']:.0%} of the image tower, "
                f"{student['params_text'] / teacher['params_text']:.0%} of the text tower) and keeps "
                f"{student['retrieval']['rsum'] / teacher['retrieval']['rsum']:.1%} of the fine-tuned "
                "teacher's RSUM."
            ),
        ]
        if student["images_per_s"] and teacher["images_per_s"]:
            findings.append(
                f"- It encodes {student['images_per_s'] / teacher['images_per_s']:.2f}x as many images "
                f"and {student['texts_per_s'] / teacher['texts_per_s']:.2f}x as many texts per second."
            )
        ablations = [r for r in rows if r["label"].startswith("student, w")]
        if ablations:
            worst = min(ablations, key=lambda r: r["retrieval"]["rsum"])
            findings.append(
                f"- Of the ablations, {worst['label'].split(', ', 1)[1]} costs the most: "
                f"{worst['retrieval']['rsum'] - student['retrieval']['rsum']:+.1f} RSUM."
            )
        if result["unfinished_ablations"]:
            findings.append(
                f"- Ablation runs without metrics.json (unfinished): "
                f"{', '.join(result['unfinished_ablations'])}."
            )
        text += "\n\nFindings (from the run's metrics):\n\n" + "\n".join(findings)
    return text


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    fig, ax = new_figure(1, 6.5, 4.2)
    rows = [r for r in result["rows"] if "untrained" not in r["label"]]
    rsums = [r["retrieval"]["rsum"] for r in rows]
    gap = (max(rsums) - min(rsums) or 1.0) / 12  # labels of models of one size are spread this far apart
    by_size: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_size.setdefault(r["params"], []).append(r)
    xs = [r["params"] / 1e6 for r in rows]
    shift = (max(xs) - min(xs) or max(xs)) * 0.06
    top = max(rsums)
    for params, group in by_size.items():
        label_y = -float("inf")
        for r in sorted(group, key=lambda r: r["retrieval"]["rsum"]):
            x, y = params / 1e6, r["retrieval"]["rsum"]
            ax.scatter([x], [y], marker="s" if r["label"].startswith("teacher") else "o", s=40)
            label_y = max(y, label_y + gap)
            top = max(top, label_y)
            ax.annotate(
                r["label"],
                (x, y),
                xytext=(x + shift, label_y),
                textcoords="data",
                fontsize=7,
                ha="left",
                va="center",
                arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5},
            )
    ax.set_xlim(min(xs) - shift, max(xs) + 6 * shift)
    ax.set_ylim(min(rsums) - gap, top + gap)
    ax.set_xlabel("parameters, image + text towers (M)")
    ax.set_ylabel("RSUM (sum of six recalls, %)")
    ax.set_title("Retrieval quality vs size")
    ax.grid(True, alpha=0.3)
    return [save_figure(fig, out_dir / "quality_rsum_vs_params.png")]
