"""Numerical parity of a bundle with PyTorch, measured by the runtime that executes the bundle.

On real test images and captions of the run's benchmark: cosine between PyTorch's and the
exported program's embeddings (per sample, min and mean), recall@K of both on the same split, the
text program at actual length vs at its longest accepted length, and the bundled tokenizer vs the
training tokenizer. ``python -m export.parity --bundle DIR`` prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from app.desktop.coreml_runtime import coreml_available
from compression.embedding import encode_tokens
from compression.evaluate import recall_at_k
from compression.models.teacher import build_tokenizer
from export.benchmark import captions_of, cut_after_eot, image_tensors, load_run_datasets, spread_indices
from export.bundle import (
    check_weights,
    load_tokenizer,
    path_bytes,
    verify_bundle,
    write_manifest,
)
from export.coreml_package import validate_package
from export.errors import ExportError
from export.parity_report import KS, EncoderParity, ParityReport, format_table
from export.runtimes import open_encoders
from export.source import ExportSource, load_export_source
from export.wrappers import export_wrappers
from formats.cli import cli_main
from formats.errors import UserError
from formats.run_card import is_assembled_run

logger = logging.getLogger(__name__)

COSINE_THRESHOLDS = {"fp32": 0.999, "fp16": 0.999, "int8": 0.99}
# max |actual-length embedding - longest-length embedding| (unit vectors) accepted per precision
LENGTH_TOLERANCES = {"fp32": 1e-5, "fp16": 5e-3, "int8": 1e-5}


class ParityError(UserError, RuntimeError):
    """An exported program whose outputs do not match PyTorch's within the stated tolerance."""


@torch.no_grad()
def pytorch_embeddings(
    source: ExportSource, images: torch.Tensor, tokens: torch.Tensor, batch_size: int = 256
):
    """Reference embeddings of the checkpoint in PyTorch fp32: images (N, D), texts (C, D), L2-normalised.

    ``tokens`` (C, context) are encoded cut after each batch's longest EOT (as in evaluation).
    """
    student = source.student.eval()
    img = torch.cat(
        [
            F.normalize(student.encode_image(images[s : s + batch_size]), dim=-1)
            for s in range(0, len(images), batch_size)
        ]
    )
    txt = encode_tokens(student.encode_text, tokens, batch_size=batch_size)
    return img, txt


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


def check_parity(
    bundle_dir: Path,
    run_dir: Path | None = None,
    cache_dir: Path | None = None,
    n_images: int | None = None,
    n_length_checks: int = 16,
    source: ExportSource | None = None,
) -> ParityReport:
    """Verify ``bundle_dir`` (sha256s) and measure its parity with the checkpoint it was made from.

    ``n_images`` test images (evenly spread; all when None) and all their captions. The exported
    programs are run one input at a time, as on a phone. Core ML bundles off macOS: prediction is
    skipped with the reason and the package structure is validated instead.
    """
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    backend, precision = manifest["backend"], manifest["precision"]
    if source is None:
        run_dir = (
            Path(run_dir) if run_dir is not None else Path(manifest.get("source", {}).get("checkpoint", ""))
        )
        if is_assembled_run(run_dir):  # the clip art model: its own student, tokenizer and test split
            from export.assembled_parity import check_assembled_parity

            return check_assembled_parity(bundle_dir, run_dir, n_images, n_length_checks)
        source = load_export_source(run_dir)
    check_weights(bundle_dir, manifest, source.run_dir)

    test = load_run_datasets(source.run_dir, cache_dir).test
    idx = spread_indices(len(test), n_images)
    images = image_tensors(test, source.preprocess, idx)
    texts, owner = captions_of(test, idx)
    train_tok = build_tokenizer(source.meta["tokenizer"]["model"], source.context_length)
    tokens = train_tok(texts)
    bundled = load_tokenizer(bundle_dir)(texts)
    tokenizer_check = {"n": len(texts), "identical": bool(torch.equal(tokens, bundled))}
    ref_img, ref_txt = pytorch_embeddings(source, images, tokens)
    recall_pt = recall_at_k(ref_img, ref_txt, owner, KS)
    failures = (
        [] if tokenizer_check["identical"] else ["bundled tokenizer differs from the training tokenizer"]
    )

    threshold = COSINE_THRESHOLDS.get(precision, 0.99)
    sizes = {enc: path_bytes(bundle_dir / manifest[enc]["program"]) / 1e6 for enc in ("image", "text")}
    report = ParityReport(
        bundle=str(bundle_dir),
        backend=backend,
        precision=precision,
        n_images=len(idx),
        n_captions=len(texts),
        image=None,
        text=None,
        recall_pytorch=recall_pt,
        recall_exported=None,
        length_check=None,
        tokenizer_check=tokenizer_check,
        runtime=None,
        failures=failures,
    )
    if backend == "coreml":
        report.structure = validate_package(bundle_dir, manifest)
        ok, why = coreml_available()
        if not ok:
            report.skipped = why
            report.image = EncoderParity(
                manifest["image"]["program"], sizes["image"], 0, None, None, threshold
            )
            report.text = EncoderParity(manifest["text"]["program"], sizes["text"], 0, None, None, threshold)
            logger.warning("%s: parity not measured: %s (package structure validated)", bundle_dir, why)
            if precision == "fp16":
                report.emulation = fp16_emulation(source, images, tokens, ref_img, ref_txt, owner)
            return report

    runner = open_encoders(bundle_dir, manifest)
    report.runtime = {"executorch-xnnpack": "executorch.runtime (XnnpackBackend)", "coreml": "Core ML",
                      "onnx": "onnxruntime (CPUExecutionProvider)"}[backend]
    with torch.no_grad():
        out_img = torch.cat(
            [
                runner.encode_image(images[i : i + 1])
                for i in tqdm(range(len(images)), desc="image program", leave=False, disable=None)
            ]
        )
        seqs = cut_after_eot(tokens)
        out_txt = torch.cat(
            [runner.encode_text(s) for s in tqdm(seqs, desc="text program", leave=False, disable=None)]
        )
    cos_img, cos_txt = _cosines(out_img, ref_img), _cosines(out_txt, ref_txt)
    report.image = EncoderParity(
        manifest["image"]["program"],
        sizes["image"],
        len(cos_img),
        cos_img.min().item(),
        cos_img.mean().item(),
        threshold,
    )
    report.text = EncoderParity(
        manifest["text"]["program"],
        sizes["text"],
        len(cos_txt),
        cos_txt.min().item(),
        cos_txt.mean().item(),
        threshold,
    )
    report.recall_exported = recall_at_k(
        F.normalize(out_img.float(), dim=-1), F.normalize(out_txt.float(), dim=-1), owner, KS
    )
    report.length_check = length_invariance(
        runner, seqs[:n_length_checks], manifest, LENGTH_TOLERANCES.get(precision, 1e-5)
    )
    for name, enc in (("image", report.image), ("text", report.text)):
        if not enc.passed:
            report.failures.append(
                f"{name} program {enc.program}: min cosine {enc.cos_min:.5f} < {enc.threshold}"
            )
    if not report.length_check["passed"]:
        report.failures.append(
            f"text program at actual length differs from full length by {report.length_check['max_abs_diff']:.2e} "
            f"> {report.length_check['tolerance']:.0e}"
        )
    return report


def record_parity(
    staging: Path, manifest: dict[str, Any], source: ExportSource, cache_dir: Path | None,
    n_images: int | None, out_dir: Path,
) -> ParityReport:
    """What every exporter does before a staged bundle may replace ``out_dir``: check its parity, write the
    summary into its manifest, and raise ParityError (naming ``out_dir``) when a check failed."""
    report = check_parity(staging, cache_dir=cache_dir, n_images=n_images, source=source)
    manifest = {key: value for key, value in manifest.items() if key != "files"}
    manifest["parity"] = report.summary()
    write_manifest(staging, manifest)
    if not report.passed:
        raise ParityError(
            f"{manifest['backend']} {manifest['precision']} bundle not written to {out_dir}: "
            + "; ".join(report.failures)
        )
    logger.info("parity: image cos min %.5f, text cos min %.5f", report.image.cos_min, report.text.cos_min)
    return report


@torch.no_grad()
def fp16_emulation(
    source: ExportSource,
    images: torch.Tensor,
    tokens: torch.Tensor,
    ref_img: torch.Tensor,
    ref_txt: torch.Tensor,
    owner,
) -> dict[str, Any]:
    """The export modules run in float16 by PyTorch on the CPU: an estimate of fp16 rounding alone.

    Not a measurement of a Core ML package (whose kernels, fusions and Neural Engine arithmetic
    differ); reported next to a skipped Core ML parity so that an fp16 collapse would show.
    """
    image, text = export_wrappers(copy.deepcopy(source.student).half())
    img = torch.cat([image(chunk.half()).float() for chunk in images.split(256)])
    txt = encode_tokens(lambda t: text(t).float(), tokens, batch_size=256)  # padding-invariant batches
    cos_img, cos_txt = _cosines(img, ref_img), _cosines(txt, ref_txt)
    return {
        "what": "PyTorch CPU float16 run of the export modules (not the .mlpackage)",
        "image_cos_min": cos_img.min().item(),
        "image_cos_mean": cos_img.mean().item(),
        "text_cos_min": cos_txt.min().item(),
        "text_cos_mean": cos_txt.mean().item(),
        "recall": recall_at_k(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), owner, KS),
    }


def length_invariance(
    runner, seqs: list[torch.Tensor], manifest: dict[str, Any], tolerance: float
) -> dict[str, Any]:
    """Each (1, L) sequence through the runtime at its own accepted length and at the longest one.

    With the causal mask the EOT output cannot see the padding, so both must agree.
    """
    lengths = manifest["text"]["lengths"]
    longest = lengths["max"] if lengths["kind"] == "range" else max(lengths["values"])
    diffs, fed = [], []
    with torch.no_grad():
        for s in seqs:
            short = runner.encode_text(s)
            full = runner.encode_text(s, length=longest)
            diffs.append((short.float() - full.float()).abs().max().item())
            fed.append(int(s.shape[1]))
    worst = max(diffs) if diffs else 0.0
    return {
        "n": len(seqs),
        "actual_lengths": sorted(set(fed)),
        "compared_with_length": longest,
        "max_abs_diff": worst,
        "tolerance": tolerance,
        "passed": worst <= tolerance,
    }


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export.parity",
        description="Run exported bundles on real test data and compare with PyTorch: cosine per sample, "
        "recall@K both ways, actual-length vs full-length text. Exit 1 if a check fails.",
    )
    p.add_argument(
        "--bundle",
        type=Path,
        action="append",
        default=None,
        help="bundle directory (repeatable; default: every bundle under bundles/)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="run directory the bundles were made from (default: the one in each manifest)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="benchmark data cache (default: $XDG_CACHE_HOME/pocketclip)",
    )
    p.add_argument(
        "--images", type=int, default=None, help="test images to use (default: the whole test split)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the reports to this JSON file")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


@cli_main("export.parity", interrupted="interrupted; no bundle was changed")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("export").setLevel(args.log_level)
    bundles = args.bundle or sorted(p.parent for p in Path("bundles").glob("*/manifest.json"))
    if not bundles:
        raise ExportError("no bundle given and none found under bundles/ (run python -m export.executorch first)")
    reports, sources = [], {}
    for b in bundles:
        run_dir = args.checkpoint
        if run_dir is None:
            from export.bundle import load_manifest

            run_dir = Path(load_manifest(b).get("source", {}).get("checkpoint", ""))
        if is_assembled_run(run_dir):  # the clip art model (export.assembled_parity)
            reports.append(check_parity(b, run_dir, n_images=args.images))
            continue
        key = str(Path(run_dir).resolve())
        if key not in sources:
            sources[key] = load_export_source(Path(run_dir))
        reports.append(
            check_parity(b, cache_dir=args.cache_dir, n_images=args.images, source=sources[key])
        )
    print(format_table(reports, next(iter(sources.values()), None)))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
