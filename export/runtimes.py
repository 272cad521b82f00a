"""Run a bundle's programs with the runtime that executes them: ExecuTorch, ONNX Runtime (here) or Core ML (macOS)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from app.desktop.coreml_runtime import coreml_available
from export.bundle import BundleError, text_input_length

logger = logging.getLogger(__name__)


class BundleEncoders(Protocol):
    """The two programs of a bundle, one input at a time."""

    manifest: dict[str, Any]

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) float32 preprocessed -> (1, D) float32 as the program outputs it."""
        ...

    def encode_text(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """(1, L) ids cut after EOT -> (1, D); fed at the manifest's length for L, or at ``length``."""
        ...


def _fit_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad or cut (1, L) ids to exactly ``length`` columns."""
    if tokens.shape[1] >= length:
        return tokens[:, :length].contiguous()
    return torch.nn.functional.pad(tokens, (0, length - tokens.shape[1])).contiguous()


class ExecuTorchEncoders:
    """A bundle's .pte programs executed by ``executorch.runtime`` (XNNPACK delegate + portable kernels)."""

    def __init__(self, bundle_dir: Path, manifest: dict[str, Any]):
        import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed kernels (int8 programs)
        from executorch.runtime import Runtime

        self.manifest = manifest
        self.runtime = Runtime.get()
        self._methods = {}
        for enc in ("image", "text"):
            path = Path(bundle_dir) / manifest[enc]["program"]
            try:
                program = self.runtime.load_program(path)
                self._methods[enc] = program.load_method("forward")
            except (RuntimeError, ValueError) as e:
                raise BundleError(f"executorch.runtime cannot load the {enc} program {path}: {e}") from e
        self._text_lengths = manifest["text"]["lengths"]

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._methods["image"].execute([image.float().contiguous()])[0].clone()

    def encode_text(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        length = length or text_input_length(tokens.shape[1], self._text_lengths)
        return self._methods["text"].execute([_fit_tokens(tokens.long(), length)])[0].clone()


class ONNXEncoders:
    """A bundle's .onnx programs executed by ONNX Runtime (CPU execution provider)."""

    def __init__(self, bundle_dir: Path, manifest: dict[str, Any]):
        import onnxruntime as ort

        self.manifest = manifest
        self._sessions = {}
        for enc in ("image", "text"):
            path = Path(bundle_dir) / manifest[enc]["program"]
            try:
                self._sessions[enc] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime's Fail/InvalidGraph/NoSuchFile types
                raise BundleError(f"onnxruntime cannot load the {enc} program {path}: {e}") from e
        self._text_lengths = manifest["text"]["lengths"]

    def _run(self, enc: str, array: np.ndarray) -> torch.Tensor:
        out = self._sessions[enc].run(None, {self.manifest[enc]["input"]["name"]: array})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).reshape(1, -1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._run("image", image.float().contiguous().numpy())

    def encode_text(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        length = length or text_input_length(tokens.shape[1], self._text_lengths)
        return self._run("text", _fit_tokens(tokens.long(), length).numpy())


class CoreMLEncoders:
    """A bundle's .mlpackage programs executed by Core ML (macOS only)."""

    def __init__(self, bundle_dir: Path, manifest: dict[str, Any], compute_units: str = "ALL"):
        import coremltools as ct

        ok, why = coreml_available()
        if not ok:
            raise BundleError(why)
        self.manifest = manifest
        self._models = {}
        for enc in ("image", "text"):
            path = Path(bundle_dir) / manifest[enc]["program"]
            self._models[enc] = ct.models.MLModel(
                str(path), compute_units=getattr(ct.ComputeUnit, compute_units)
            )
        self._text_lengths = manifest["text"]["lengths"]

    def _predict(self, enc: str, array: np.ndarray) -> torch.Tensor:
        spec = self.manifest[enc]
        out = self._models[enc].predict({spec["input"]["name"]: array})[spec["output"]["name"]]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).reshape(1, -1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._predict("image", image.float().numpy())

    def encode_text(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        length = length or text_input_length(tokens.shape[1], self._text_lengths)
        return self._predict("text", _fit_tokens(tokens, length).numpy().astype(np.int32))


def open_encoders(bundle_dir: Path, manifest: dict[str, Any]) -> BundleEncoders:
    """The runner for the bundle's backend; BundleError if this machine cannot execute it."""
    backend = manifest["backend"]
    if backend in ("executorch-xnnpack", "executorch"):  # "executorch": the assembled student's bundles
        return ExecuTorchEncoders(bundle_dir, manifest)
    if backend == "coreml":
        return CoreMLEncoders(bundle_dir, manifest)
    if backend == "onnx":
        return ONNXEncoders(bundle_dir, manifest)
    raise BundleError(f"{Path(bundle_dir) / 'manifest.json'}: unknown backend {backend!r}")
