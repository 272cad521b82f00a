"""Import the model runtime's native libraries before Kivy opens its window (desktop only; no Kivy here).

Why: the PyTorch and ExecuTorch desktop runtimes import ``torch._dynamo``, which loads Triton's
native library with its own LLVM. Loaded *after* an OpenGL driver built on LLVM (Mesa's llvmpipe
under Xvfb, radeonsi on AMD cards), the two LLVMs' symbols clash and the process dies with a
segmentation fault inside ``import triton``. Loaded *before* the window exists, both coexist. The
import costs a few seconds that the model load would spend anyway. Phones run neither runtime.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from pathlib import Path

from formats.model_dir import RUN, ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)


def runtime_needs_torch(model: Path) -> bool:
    """Whether opening ``model`` on this desktop imports torch: a run directory, or an ExecuTorch bundle
    (its desktop runtime is ``executorch.runtime``, which imports torch). Core ML bundles do not."""
    try:
        found = resolve_model(model)
    except ModelNotFoundError:
        return False
    # a folder: any of its bundles may be the one that opens (the engine moves on when one cannot)
    return found.kind == RUN or "executorch-xnnpack" in found.backends


def preload_runtime(model: Path) -> float:
    """Import ``torch._dynamo`` (and with it Triton, when installed) if ``model`` needs torch; returns seconds spent."""
    if not runtime_needs_torch(model) or importlib.util.find_spec("torch") is None:
        return 0.0
    start = time.perf_counter()
    importlib.import_module("torch._dynamo")
    seconds = time.perf_counter() - start
    logger.info("runtime libraries imported before the window in %.2fs", seconds)
    return seconds
