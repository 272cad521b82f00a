"""Core ML runtime (macOS): a bundle's .mlpackage programs run by coremltools' Core ML bindings."""
from __future__ import annotations

import logging
import platform

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for
from formats.text import sequence_length

logger = logging.getLogger(__name__)


def coreml_available() -> tuple[bool, str]:
    """(True, "") where Core ML prediction can run (macOS + coremltools' native bindings), else (False, why).

    The one such check: the app's runtime and export's parity check (``export.runtimes``) both ask it."""
    if platform.system() != "Darwin":
        return False, f"Core ML prediction needs macOS (this is {platform.system()})"
    try:
        from coremltools import libcoremlpython  # noqa: F401
    except ImportError as e:
        return False, f"coremltools has no Core ML bindings here ({e})"
    return True, ""


class CoreMLEncoders(Encoders):
    """Both ``MLModel`` s loaded once (compiled by Core ML on load) and kept; fixed input shapes honoured."""

    backend = "coreml"

    def __init__(self, bundle: BundleInfo, compute_units: str = "ALL"):
        ok, why = coreml_available()
        if not ok:
            raise ModelLoadError(f"{bundle.root}: {why}")
        import coremltools as ct

        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self.image_batch_size = 32  # photos per indexing batch; the program batch is handled by batches_for
        self._models = {}
        for name, path in (("image", bundle.image_program), ("text", bundle.text_program)):
            try:
                self._models[name] = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
            except Exception as e:  # coremltools raises RuntimeError/ValueError/its own types on bad packages
                raise ModelLoadError(f"Core ML cannot load the {name} program {path}: {e}") from e
        self._io = {name: (bundle.manifest[name]["input"]["name"], bundle.manifest[name]["output"]["name"])
                    for name in ("image", "text")}
        logger.info("loaded %s", self.describe())

    def _predict(self, name: str, array: np.ndarray) -> np.ndarray:
        inp, outp = self._io[name]
        return np.asarray(self._models[name].predict({inp: array})[outp], dtype=np.float32).reshape(array.shape[0], -1)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        out = [self._predict("image", chunk)[:n]
               for chunk, n in batches_for(np.asarray(pixels, dtype=np.float32), self.bundle.image_batch)]
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        out = []
        for row in np.asarray(tokens, dtype=np.int64):
            seq = self.bundle.fit_tokens(row[None, : sequence_length(row)])
            out.append(self._predict("text", seq.astype(np.int32)))  # Core ML takes int32 ids
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        self._models = {}
