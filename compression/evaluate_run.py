"""`python -m compression.evaluate_run`: recall@K of a finished run's student (and teacher) on another test set.

The paper reports Flickr30K 1K test beside COCO: a run trained on COCO is evaluated on Flickr30K's
Karpathy test split (1000 images, 5000 captions) without training anything, from the run directory
alone (student.json/teacher.json carry the weights' architecture, preprocessing and tokenizer)::

    python -m compression.evaluate_run --run-dir runs/paper-vitb32-vits16-text6 \\
        --paired data/flickr30k/dataset_flickr30k.json --image-root data/flickr30k/images
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from compression.checkpoint import load_student, read_json
from compression.data.readers import read_karpathy
from compression.data.transforms import image_transform
from compression.models.teacher import Preprocess, build_tokenizer
from formats.atomic import atomic_write_json
from formats.cli import cli_main
from formats.run_card import RUN_CARD, TEACHER_CARD

logger = logging.getLogger(__name__)


def preprocess_of(meta: dict[str, Any], where: Path) -> Preprocess:
    """The run's image preprocessing (student.json["preprocess"]); FormatError naming ``where`` if unusable."""
    return Preprocess.from_dict(meta.get("preprocess"), f"{where}: preprocess")


def evaluate_run(run_dir: Path, paired: str, image_root: str | None, split: str, ks: list[int], fold_size: int | None,
                 with_teacher: bool, device: torch.device, batch_size: int = 256) -> dict[str, dict]:
    """{"student": recall dict, "teacher": recall dict (if ``with_teacher``)} on ``split`` of a Karpathy JSON."""
    from compression.pipeline import evaluate_model, load_teacher
    from compression.stages import PhaseContext

    data = read_karpathy(paired, image_root, [split])
    student, meta = load_student(run_dir)
    tok = meta["tokenizer"]
    ctx = PhaseContext(transform=image_transform(preprocess_of(meta, run_dir / RUN_CARD)),
                       tokenizer=build_tokenizer(tok["model"], tok["context_length"]), device=device, seed=0,
                       checkpoint=None, progress=False)
    out = {"student": evaluate_model(student.to(device), data, ctx, ks, batch_size, fold_size=fold_size)}
    if with_teacher:
        teacher_meta = read_json(run_dir / TEACHER_CARD, "teacher config")
        teacher_tf = image_transform(preprocess_of(teacher_meta, run_dir / TEACHER_CARD))
        out["teacher"] = evaluate_model(load_teacher(run_dir).to(device), data, ctx, ks, batch_size, teacher_tf, fold_size)
    out["split"] = {"file": str(paired), "split": split, "images": len(data), "captions": sum(map(len, data.captions))}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m compression.evaluate_run", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--run-dir", type=Path, required=True, help="a finished run directory (student.json, teacher.json, weights)")
    p.add_argument("--paired", required=True, help="Karpathy-split JSON, e.g. data/flickr30k/dataset_flickr30k.json")
    p.add_argument("--image-root", default=None, help="folder the JSON's image paths are relative to (default: the JSON's)")
    p.add_argument("--split", default="test", help="which split to evaluate (default: test)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10], help="recall@K cut-offs (default: 1 5 10)")
    p.add_argument("--fold-size", type=int, default=1000, help="also average over folds of this many images when there are >= 2")
    p.add_argument("--no-teacher", action="store_true", help="evaluate the student only")
    p.add_argument("--name", default=None, help="results go to RUN_DIR/eval-NAME.json (default: the JSON's stem and the split)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    return p.parse_args(argv)


@cli_main("compression.evaluate_run")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from compression.pipeline import resolve_device

    device = resolve_device(args.device)
    results = evaluate_run(args.run_dir, args.paired, args.image_root, args.split, args.ks, args.fold_size,
                           not args.no_teacher, device)
    name = args.name or f"{Path(args.paired).stem}-{args.split}"
    atomic_write_json(args.run_dir / f"eval-{name}.json", results)
    for who in ("student", "teacher"):
        if who in results:
            r = results[who]
            cells = " ".join(f"{k}={v:.1f}" for k, v in r.items() if "R@" in k)
            print(f"{who}: {cells} RSUM={r['rsum']:.1f}")
    print(f"{results['split']['images']} images, {results['split']['captions']} captions; written to {args.run_dir / f'eval-{name}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
