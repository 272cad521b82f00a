"""Dataset parity of an assembled-student bundle (``--config clipart`` runs) with PyTorch.

The counterpart of ``export.parity.check_parity`` for the clip art model: on the run's own test split
(the Debian clip art test drawings and their captions), cosine per sample between the PyTorch student
and the bundle's programs run one input at a time by their runtime, recall@K of both, the text program
at actual length vs padded to the context length, the bundle's WordPiece tokenizer (the engine's) vs
the student's Hugging Face tokenizer, and the manifest's weights sha256 vs the run's safetensors.
Core ML bundles off macOS: prediction skipped with the reason, the packages validated instead.
``python -m export.parity`` routes assembled runs here.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from app.desktop.coreml_runtime import coreml_available
from compression.data.captioned import CaptionedImages
from compression.evaluate import recall_at_k
from export.benchmark import captions_of, image_tensors, spread_indices
from export.bundle import BundleError, check_weights, path_bytes, verify_bundle
from export.coreml_package import validate_package
from export.parity_report import KS, EncoderParity, ParityReport
from export.runtimes import open_encoders
from formats.run_card import card_embed_dim, read_run_card
from formats.text import sequence_length

logger = logging.getLogger(__name__)

RUNTIMES = {"executorch": "executorch.runtime (XnnpackBackend)", "executorch-xnnpack": "executorch.runtime (XnnpackBackend)",
            "coreml": "Core ML", "onnx": "onnxruntime (CPUExecutionProvider)"}


def clipart_test_split() -> CaptionedImages:
    """The test split of the clip art runs: the Debian openclipart drawings held out by content hash."""
    from compression.data.openclipart import OPENCLIPART_ROOT, load_openclipart

    return load_openclipart(OPENCLIPART_ROOT).splits["test"]


@torch.no_grad()
def _reference(student, images: torch.Tensor, ids: torch.Tensor, batch_size: int = 32):
    img = torch.cat([student.encode_image(images[s : s + batch_size], normalize=True)
                     for s in range(0, len(images), batch_size)])
    txt = torch.cat([student.encode_text(ids[s : s + batch_size], normalize=True)
                     for s in range(0, len(ids), batch_size)])
    return img, txt


def check_assembled_parity(
    bundle_dir: Path, run_dir: Path | None = None, n_images: int | None = None, n_length_checks: int = 16,
) -> ParityReport:
    """Verify ``bundle_dir`` (sha256s, weights of ``run_dir``) and measure its parity with the assembled student.

    ``run_dir``: the run the bundle was made from (default: the manifest's ``source.checkpoint``);
    ``n_images`` test drawings, evenly spread (all when None), and all their captions.
    """
    from app.engine.runtimes.bundle import read_bundle
    from compression.models.assembled_student import load_assembled_student
    from export.parity import COSINE_THRESHOLDS, LENGTH_TOLERANCES, length_invariance

    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    backend, precision = manifest["backend"], manifest["precision"]
    run_dir = Path(run_dir) if run_dir is not None else Path((manifest.get("source") or {}).get("checkpoint", ""))
    check_weights(bundle_dir, manifest, run_dir)
    card = read_run_card(run_dir, BundleError)
    dim = card_embed_dim(card.data)
    if manifest.get("embedding_dim") not in (None, dim):
        raise BundleError(f"{bundle_dir / 'manifest.json'}: embedding_dim {manifest['embedding_dim']}, "
                          f"but {card.path} outputs {dim}")
    student, meta = load_assembled_student(run_dir)
    ctx = int(meta["tokenizer"]["max_length"])

    test = clipart_test_split()
    idx = spread_indices(len(test), n_images)
    images = image_tensors(test, card.preprocess(), idx)
    texts, owner = captions_of(test, idx)
    ids = student.tokenizer(texts, padding="max_length", truncation=True, max_length=ctx, return_tensors="pt")["input_ids"]
    bundled = read_bundle(bundle_dir, verify=False).tokenizer(texts)
    tokenizer_check = {"n": len(texts), "identical": bool(np.array_equal(np.asarray(bundled), ids.numpy()))}
    ref_img, ref_txt = _reference(student, images, ids)
    failures = [] if tokenizer_check["identical"] else [
        f"bundled tokenizer ({bundle_dir / manifest['tokenizer']['vocab']}) differs from the student's ({run_dir})"]

    threshold = COSINE_THRESHOLDS.get(precision, 0.99)
    sizes = {enc: path_bytes(bundle_dir / manifest[enc]["program"]) / 1e6 for enc in ("image", "text")}
    report = ParityReport(
        bundle=str(bundle_dir), backend=backend, precision=precision, n_images=len(idx), n_captions=len(texts),
        image=None, text=None, recall_pytorch=recall_at_k(ref_img, ref_txt, owner, KS), recall_exported=None,
        length_check=None, tokenizer_check=tokenizer_check, runtime=None, failures=failures,
    )
    if backend == "coreml":
        report.structure = validate_package(bundle_dir, manifest)
        ok, why = coreml_available()
        if not ok:
            report.skipped = why
            report.image = EncoderParity(manifest["image"]["program"], sizes["image"], 0, None, None, threshold)
            report.text = EncoderParity(manifest["text"]["program"], sizes["text"], 0, None, None, threshold)
            logger.warning("%s: parity not measured: %s (package structure validated)", bundle_dir, why)
            return report

    runner = open_encoders(bundle_dir, manifest)
    report.runtime = RUNTIMES.get(backend, backend)
    seqs = [ids[i : i + 1, : sequence_length(ids[i])].clone() for i in range(len(ids))]
    with torch.no_grad():
        out_img = torch.cat([runner.encode_image(images[i : i + 1])
                             for i in tqdm(range(len(images)), desc="image program", leave=False, disable=None)])
        out_txt = torch.cat([runner.encode_text(s) for s in tqdm(seqs, desc="text program", leave=False, disable=None)])
    for name, out, ref in (("image", out_img, ref_img), ("text", out_txt, ref_txt)):
        cos = F.cosine_similarity(out.float(), ref.float(), dim=-1)
        enc = EncoderParity(manifest[name]["program"], sizes[name], len(cos), cos.min().item(), cos.mean().item(),
                            threshold)
        setattr(report, name, enc)
        if not enc.passed:
            report.failures.append(f"{name} program {enc.program}: min cosine {enc.cos_min:.5f} < {enc.threshold}")
    report.recall_exported = recall_at_k(F.normalize(out_img.float(), dim=-1), F.normalize(out_txt.float(), dim=-1),
                                         owner, KS)
    report.length_check = length_invariance(runner, seqs[:n_length_checks], manifest,
                                            LENGTH_TOLERANCES.get(precision, 1e-5))
    if not report.length_check["passed"]:
        report.failures.append(
            f"text program at actual length differs from length {report.length_check['compared_with_length']} by "
            f"{report.length_check['max_abs_diff']:.2e} > {report.length_check['tolerance']:.0e}")
    return report
