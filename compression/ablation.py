"""`python -m compression.ablation`: the paper's ablation table (full recipe vs w/o stage 1, KD, HN, sequential).

The "full recipe" row is the main job's own run (``runs/synthetic`` for the synthetic benchmark, its default base: run or
resumed here, a no-op when `python -m compression.run` has finished). Variants share the phases
their configs have in common with it: the full run keeps every phase's weights
(``keep_phase_checkpoints``), and each variant starts from a copy of the shared ones (e.g. "w/o KD"
re-runs only stage 2), so the table costs one full run plus the differing phases, and the
differences are due to the ablated component alone (same teacher, same stage 1, same seeds).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from compression.config import config_digest, default_cache_dir, load_config
from compression.pipeline import PHASES, STATE_FILE, RunDirError, RunState, run_pipeline
from formats.atomic import atomic_write_bytes, atomic_write_json
from formats.cli import cli_main

logger = logging.getLogger(__name__)

STAGE1 = ["stage1-image", "stage1-text"]
TEACHER_FT = ["teacher-ft-image", "teacher-ft-text"]

# name -> (config overrides, phases reused from the full run), as the paper defines its ablations:
# "w/o KD" drops both distillation terms of stage 2 (the matching KD and the stage-1 contrastive term);
# "w/o sequential" trains the two student towers jointly, the teacher's fine-tuning unchanged;
# "text = teacher's" is the paper's image-encoder comparison: the student image tower trained against
# the fine-tuned teacher's whole text tower, which is kept (its stage 1 runs again: the shared stage-1
# checkpoint holds a student with the cut text tower).
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "full recipe": ([], []),
    "w/o stage 1": (["stage1.enabled=false"], TEACHER_FT),
    "w/o KD": (["stage2.kd_weight=0", "stage2.distill_weight=0"], STAGE1 + TEACHER_FT),
    "w/o HN": (["stage2.hard_negatives=0"], STAGE1 + TEACHER_FT),
    "w/o sequential": (["stage2.sequential=false"], STAGE1 + TEACHER_FT),
    "text = teacher's": (["student.train_text=false"], []),
}


def slug(name: str) -> str:
    return name.replace("w/o ", "wo-").replace(" = ", "-is-").replace("'", "").replace(" ", "-")


def seed_from_full(full_dir: Path, variant_dir: Path, digest: str, shared: list[str]) -> None:
    """Start ``variant_dir`` with the shared phases of the full run already done (weights copied)."""
    if (variant_dir / STATE_FILE).is_file() or not shared:
        return
    full = RunState.load(full_dir / STATE_FILE)
    state = RunState(config_digest=digest, done=list(shared))
    state.metrics = {k: v for k, v in full.metrics.items() if k in ("teacher_zero_shot", "student_untrained")}
    state.seconds = {k: v for k, v in full.seconds.items() if k in shared}
    (variant_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for phase in shared:
        src = full_dir / "checkpoints" / f"{phase}.safetensors"
        if not src.is_file():
            raise RunDirError(
                f"{src} is missing: the full run must keep its phase weights "
                f"(--set keep_phase_checkpoints=true for the main job, then run it again)"
            )
        shutil.copy2(src, variant_dir / "checkpoints" / src.name)
        if PHASES[phase].trains == "teacher":
            state.teacher_file = f"checkpoints/{src.name}"
        else:
            state.student_file = f"checkpoints/{src.name}"
    state.save(variant_dir / STATE_FILE)


def ablation_table(results: dict[str, dict], ks: list[int]) -> str:
    full = results["full recipe"]["rsum"]
    head = "| variant | " + " | ".join(f"T→I R@{k}" for k in ks) + " | " + " | ".join(f"I→T R@{k}" for k in ks) + " | RSUM | Δ RSUM |"
    lines = [head, "|" + "---|" * (2 * len(ks) + 3)]
    for name, r in results.items():
        cells = [f"{r[f't2i_R@{k}']:.1f}" for k in ks] + [f"{r[f'i2t_R@{k}']:.1f}" for k in ks]
        delta = "" if name == "full recipe" else f"{r['rsum'] - full:+.1f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['rsum']:.1f} | {delta} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m compression.ablation", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--config", default=None, help="base config of the open_clip pipeline (default: synthetic, the synthetic benchmark)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                   help=f"which rows to run (default: all): {', '.join(VARIANTS)}")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the main job's run directory is (default: runs)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="folder for the variant runs and report.md")
    p.add_argument("--cache-dir", type=Path, default=None, help="data/teacher cache (default: as compression.run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


@cli_main("compression.ablation")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("compression").setLevel(logging.INFO)
    cache = args.cache_dir or default_cache_dir()
    variants = ["full recipe"] + [v for v in args.variants if v != "full recipe"]
    results: dict[str, dict] = {}
    full_dir = None
    for name in variants:
        overrides, shared = VARIANTS[name]
        cfg = load_config(args.config, args.overrides + overrides)
        if name == "full recipe":  # exactly the main job's config, so its run is reused
            full_dir = run_dir = args.runs_dir / cfg.name
        else:
            cfg.name = slug(name)
            run_dir = args.out / cfg.name
            seed_from_full(full_dir, run_dir, config_digest(cfg), shared)
        logger.info("ablation: %s (%s)", name, ", ".join(overrides) or "as configured")
        metrics = run_pipeline(cfg, run_dir, cache, progress=not args.no_progress)
        results[name] = metrics["retrieval"]["student"]
    table = ablation_table(results, cfg.eval.ks)
    text = f"# Ablation of the student recipe\n\nTest split, student recall@K. Base config: {args.config or 'synthetic'}.\n\n{table}\n"
    atomic_write_bytes(args.out / "report.md", text.encode())
    atomic_write_json(args.out / "results.json", results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
