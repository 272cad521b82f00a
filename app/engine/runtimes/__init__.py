"""Encoder runtimes behind one interface, and ``load_encoders(path)``: the factory choosing among them.

* a run directory (``student.json``): refused here; the desktop opens it with PyTorch
  (``app.desktop.models.load_model``), phones never see one;
* a bundle (``manifest.json``): verified file by file against the manifest's sha256, then run by
  the runtime its ``backend`` names that this platform has: ExecuTorch (desktop Python runtime, or
  the Java API through pyjnius on Android), ONNX Runtime (desktop, no torch) or Core ML (coremltools on
  macOS, pyobjus on iOS);
* a folder of bundles: the first one this platform can run, in ``formats.model_dir``'s order (Core ML
  first on Apple platforms, ONNX first elsewhere), the one the settings screen describes.

Platform bridges are imported only on their platform.
"""
from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from app.engine.runtimes.base import Encoders, ModelLoadError
from app.engine.runtimes.bundle import BundleInfo
from formats.model_dir import BUNDLE, RUN, ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)

__all__ = ["PHONE_OPENERS", "Encoders", "ModelLoadError", "Opener", "load_encoders", "runtime_for_backend"]


def runtime_for_backend(backend: str) -> str:
    """Which runtime runs a bundle of ``backend`` here: a key of ``_OPENERS``, or ModelLoadError."""
    from app.engine.runtimes.android import on_android
    from app.engine.runtimes.ios import on_ios

    if backend == "executorch-xnnpack":
        return "android" if on_android() else "executorch"
    if backend == "onnx":
        return "onnx"
    if backend == "coreml":
        if on_ios():
            return "ios"
        if platform.system() == "Darwin":
            return "coreml"
        raise ModelLoadError(f"a Core ML bundle runs only on macOS or iOS (this is {platform.system()})")
    raise ModelLoadError(f"unknown bundle backend {backend!r} (expected 'executorch-xnnpack', 'onnx' or 'coreml')")


Opener = Callable[[BundleInfo, int | None], Encoders]  # (bundle, threads) -> encoders


def _open_android(bundle: BundleInfo, threads: int | None = None) -> Encoders:
    from app.engine.runtimes.android import AndroidExecuTorchEncoders

    return AndroidExecuTorchEncoders(bundle)


def _open_ios(bundle: BundleInfo, threads: int | None = None) -> Encoders:
    from app.engine.runtimes.ios import IOSCoreMLEncoders

    return IOSCoreMLEncoders(bundle)


def _open_onnx(bundle: BundleInfo, threads: int | None = None) -> Encoders:
    from app.engine.runtimes.onnx_runtime import ONNXEncoders

    return ONNXEncoders(bundle, threads=threads)


# the runtimes that need neither torch nor desktop export tools: the phones' bridges and ONNX Runtime;
# the desktop adds its own (app.desktop.models.DESKTOP_OPENERS)
ENGINE_OPENERS: Mapping[str, Opener] = MappingProxyType(
    {"android": _open_android, "ios": _open_ios, "onnx": _open_onnx}
)


def _open_bundle(path: Path, verify: bool, openers: Mapping[str, Opener], threads: int | None) -> Encoders:
    from app.engine.runtimes.bundle import read_bundle

    bundle = read_bundle(path, verify=verify)
    kind = runtime_for_backend(bundle.manifest["backend"])
    if kind not in openers:
        raise ModelLoadError(f"{path}: its {kind} runtime is desktop-only; open it with the desktop app or CLI")
    return openers[kind](bundle, threads)


def load_encoders(path: str | Path, verify: bool = True, threads: int | None = None,
                  openers: Mapping[str, Opener] = ENGINE_OPENERS) -> Encoders:
    """The encoders stored at ``path`` (a bundle, or a folder of bundles). Raises ModelLoadError.

    ``threads`` caps ONNX Runtime's intra-op threads (an ONNX bundle); the other bundles use their
    runtime's pool. ``openers``: runtime name (:func:`runtime_for_backend`) -> what opens a bundle with it.
    """
    try:
        model = resolve_model(path)
    except ModelNotFoundError as e:
        raise ModelLoadError(str(e)) from e
    if model.kind == RUN:
        raise ModelLoadError(
            f"{model.path} is a PyTorch run directory (student.json): only the desktop app and CLI open one; "
            f"phones need a bundle (python -m export.executorch / python -m export.coreml)"
        )
    if model.kind == BUNDLE:
        return _open_bundle(model.path, verify, openers, threads)
    errors = []
    for sub in model.candidates:  # best first (formats.model_dir.bundle_preference)
        try:
            return _open_bundle(sub, verify, openers, threads)
        except ModelLoadError as e:
            logger.warning("skipping bundle %s: %s", sub, e)
            errors.append(str(e))
    raise ModelLoadError(f"no bundle under {model.path} runs here: " + " | ".join(errors))
