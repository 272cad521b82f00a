"""Train and evaluate the assembled teacher (seed 002's recipe) on the Open Clip Art Library, and the
ConSE baseline beside it, on the clip art test split and the real-photo check set.

    python -m compression.assembled_teacher            # frozen features cached on first use
    python -m compression.assembled_teacher --json     # the metrics as JSON on stdout

The run directory gets ``shared.safetensors`` (the shared encoder + logit scale), ``config.json``
(everything needed to rebuild the model: tower names, sizes) and ``metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from compression.assembled_features import FrozenFeatures, cached_features
from compression.assembled_training import ClassNameTexts, SharedTrainConfig, evaluate_shared, train_shared
from compression.checkpoint import save_weights
from compression.config import default_cache_dir
from compression.conse import (
    DEFAULT_TOP_T,
    cached_class_name_embeddings,
    class_name_token_states,
    conse_embeddings,
)
from compression.data.captioned import CaptionedImages
from compression.data.decoded_images import decoded_captioned
from compression.data.openclipart import OPENCLIPART_ROOT, load_openclipart
from compression.data.real_photos import real_photo_check
from compression.evaluate import recall_at_k
from compression.models.assembled import SharedEncoder, SharedEncoderConfig
from compression.models.pretrained_towers import (
    EFFICIENTNET_LITE,
    create_efficientnet_lite,
    create_minilm,
)
from formats.atomic import atomic_write_json
from formats.cli import cli_main

logger = logging.getLogger(__name__)

DECODE_SIZE = 260  # images are decoded once at the largest tower's size (Lite2); smaller towers resize from it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d, e = SharedTrainConfig(), SharedEncoderConfig()
    p = argparse.ArgumentParser(prog="python -m compression.assembled_teacher", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/assembled-teacher"), help="run directory")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="frozen tower features (default: $XDG_CACHE_HOME/pocketclip/assembled)")
    p.add_argument("--clipart-root", type=Path, default=OPENCLIPART_ROOT, help="openclipart-png/-svg install root")
    p.add_argument("--image-tower", default="efficientnet_lite2", choices=sorted(EFFICIENTNET_LITE))
    p.add_argument("--grid", type=int, default=e.image_grid, help="image tokens = grid x grid pooled feature map cells")
    p.add_argument("--width", type=int, default=e.width)
    p.add_argument("--layers", type=int, default=e.layers, help="shared transformer layers")
    p.add_argument("--heads", type=int, default=e.heads)
    p.add_argument("--embed-dim", type=int, default=e.embed_dim)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--distill-weight", type=float, default=d.distill_weight, help="0 turns the distillation term off")
    p.add_argument("--class-name-weight", type=float, default=d.class_name_weight,
                   help="weight of extra pairs (drawing, its top ImageNet class name); 0 = off")
    p.add_argument("--conse-top", type=int, default=DEFAULT_TOP_T, help="ConSE's T (top ImageNet classes)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit", type=int, default=None, help="use at most this many drawings per split (quick runs)")
    p.add_argument("--decode-workers", type=int, default=2, help="processes decoding the PNGs on first use")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-check", action="store_true", help="skip the real-photo check set")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return p.parse_args(argv)


def _limit(data: CaptionedImages, n: int | None) -> CaptionedImages:
    if n is None or n >= len(data):
        return data
    return CaptionedImages(data.images.subset(range(n)), data.captions[:n], data.names[:n])


def _conse(feats: FrozenFeatures, class_emb: torch.Tensor, top_t: int) -> dict[str, float]:
    return recall_at_k(conse_embeddings(feats.image_logits, class_emb, top_t), feats.text_sentence, feats.text_owner)


def format_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per (set, model): recall@1/5/10 text->image and image->text, RSUM."""
    cols = ["t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "rsum"]
    lines = [f"| set | model | {' | '.join(cols)} |", "|" + "---|" * (len(cols) + 2)]
    for split, models in metrics.items():
        for model, m in models.items():
            lines.append(f"| {split} | {model} | " + " | ".join(f"{m[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    corpus = load_openclipart(args.clipart_root, progress=not args.no_progress)
    splits = {name: _limit(corpus.splits[name], args.limit) for name in ("train", "val", "test")}
    if not args.no_check:
        splits["real-photo check"] = real_photo_check()
    towers = (create_efficientnet_lite(args.image_tower), create_minilm())
    cache = args.cache_dir or default_cache_dir() / "assembled"
    splits = {name: decoded_captioned(cache / "decoded", name.split()[0], data, DECODE_SIZE, args.decode_workers,
                                      not args.no_progress)
              for name, data in splits.items()}
    feats = {name: cached_features(cache, name.split()[0], data, towers, args.image_tower, args.grid, not args.no_progress)
             for name, data in splits.items()}
    t_features = time.perf_counter() - t0

    enc_cfg = SharedEncoderConfig(towers[0].num_features, towers[1].model.config.hidden_size, args.grid, args.width,
                                  args.layers, args.heads, args.embed_dim)
    train_cfg = SharedTrainConfig(args.epochs, args.batch_size, args.lr, distill_weight=args.distill_weight,
                                  class_name_weight=args.class_name_weight, seed=args.seed)
    class_names = ClassNameTexts(*class_name_token_states(towers[1])) if args.class_name_weight > 0 else None
    shared = SharedEncoder(enc_cfg)
    t1 = time.perf_counter()
    scale, history = train_shared(shared, feats["train"], feats["val"], train_cfg, not args.no_progress, class_names)
    t_train = time.perf_counter() - t1

    class_emb = cached_class_name_embeddings(cache, towers[1])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in splits:
        if name == "train":
            continue
        results[name] = {f"ConSE (T={args.conse_top})": _conse(feats[name], class_emb, args.conse_top),
                         "assembled teacher": evaluate_shared(shared, feats[name])}
    metrics = {
        "results": results,
        "counts": corpus.counts,
        "seconds": {"data_and_features": t_features, "train": t_train, "total": time.perf_counter() - t0},
        "best_epoch": max(history, key=lambda r: r["val_rsum"])["epoch"] if history else 0,
        "history": history,
        "params": {"shared_trainable": sum(p.numel() for p in shared.parameters()),
                   "image_tower": sum(p.numel() for p in towers[0].parameters()),
                   "text_tower": sum(p.numel() for p in towers[1].model.parameters())},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_weights(torch.nn.ModuleDict({"shared": shared, "logit_scale": scale}), args.out / "shared.safetensors")
    atomic_write_json(args.out / "config.json", {
        "kind": "assembled", "image_tower": args.image_tower, "text_tower": "all-MiniLM-L6-v2",
        "shared": enc_cfg.to_dict(), "train": train_cfg.to_dict(), "conse_top": args.conse_top,
    })
    atomic_write_json(args.out / "metrics.json", metrics)
    return metrics


@cli_main("compression.assembled_teacher", interrupted="interrupted; the features cached so far are kept")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    metrics = run(args)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_table(metrics["results"]))
        s = metrics["seconds"]
        print(f"features {s['data_and_features']:.0f}s, training {s['train']:.0f}s (best epoch {metrics['best_epoch']}), "
              f"total {s['total']:.0f}s; run directory {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
