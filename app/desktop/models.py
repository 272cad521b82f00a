"""The desktop's model loader: PyTorch run directories, and bundles through the desktop runtimes too."""
from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from app.engine.runtimes import ENGINE_OPENERS, Encoders, load_encoders
from app.engine.runtimes.bundle import BundleInfo
from formats.model_dir import RUN, ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)


def _open_executorch(bundle: BundleInfo, threads: int | None = None) -> Encoders:
    from app.desktop.executorch_runtime import ExecuTorchEncoders

    return ExecuTorchEncoders(bundle)


def _open_coreml(bundle: BundleInfo, threads: int | None = None) -> Encoders:
    from app.desktop.coreml_runtime import CoreMLEncoders

    return CoreMLEncoders(bundle)


DESKTOP_OPENERS = MappingProxyType({**ENGINE_OPENERS, "executorch": _open_executorch, "coreml": _open_coreml})


def load_model(path: str | Path, verify: bool = True, threads: int | None = None) -> Encoders:
    """A run directory through PyTorch, else :func:`app.engine.runtimes.load_encoders`. Raises ModelLoadError.

    ``threads`` caps PyTorch's intra-op threads (a run directory) or ONNX Runtime's (an ONNX bundle).
    """
    try:
        model = resolve_model(path)
    except ModelNotFoundError:
        model = None  # load_encoders says what is wrong
    if model is not None and model.kind == RUN:
        from app.desktop.torch_runtime import TorchEncoders

        return TorchEncoders(model.path, threads=threads)
    return load_encoders(path, verify=verify, threads=threads, openers=DESKTOP_OPENERS)
