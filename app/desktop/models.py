"""The desktop's model loader: PyTorch run directories, and bundles through the desktop runtimes too."""
from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from app.engine.runtimes import PHONE_OPENERS, Encoders, load_encoders
from app.engine.runtimes.bundle import BundleInfo

logger = logging.getLogger(__name__)


def _open_executorch(bundle: BundleInfo) -> Encoders:
    from app.desktop.executorch_runtime import ExecuTorchEncoders

    return ExecuTorchEncoders(bundle)


def _open_coreml(bundle: BundleInfo) -> Encoders:
    from app.desktop.coreml_runtime import CoreMLEncoders

    return CoreMLEncoders(bundle)


DESKTOP_OPENERS = MappingProxyType({**PHONE_OPENERS, "executorch": _open_executorch, "coreml": _open_coreml})


def load_model(path: str | Path, verify: bool = True, threads: int | None = None) -> Encoders:
    """A run directory through PyTorch, else :func:`app.engine.runtimes.load_encoders`. Raises ModelLoadError.

    ``threads`` caps PyTorch's intra-op threads (a run directory only; bundles use their runtime's pool).
    """
    if (Path(path).expanduser() / "student.json").is_file():
        from app.desktop.torch_runtime import TorchEncoders

        return TorchEncoders(Path(path).expanduser(), threads=threads)
    return load_encoders(path, verify=verify, openers=DESKTOP_OPENERS)
