"""Android bridge: a bundle's .pte programs run by ExecuTorch's Android library, via pyjnius.

Threads: pyjnius looks Java classes up with JNI ``FindClass``. On a thread Python started (the
app's engine and indexer threads) that sees only the system class loader, never the APK's classes,
so a lookup there fails (python-for-android #2242); and ``Module.forward(EValue...)`` called from
Python converts its varargs list to a Java array with such a lookup on every call. So:

* :func:`resolve_java_classes` looks up the one class Python needs, ``org.pocketclip.ExecuTorchBridge``
  (``android-src/``, shipped in the APK by buildozer's ``android.add_src``), once, on the main thread;
* every later call passes only ``byte[]``/``long[]`` and gets ``float[]`` back (primitive arrays need
  no class lookup); the bridge's Java code uses ExecuTorch's ``Module``/``Tensor``/``EValue`` itself.

``tests/phones`` runs this module with real pyjnius on a JVM against stand-ins of ExecuTorch's
classes, with an agent that fails any off-thread lookup of an app class as Android does.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for
from formats.text import sequence_length

logger = logging.getLogger(__name__)

BRIDGE_CLASS = "org.pocketclip.ExecuTorchBridge"


def on_android() -> bool:
    """True inside an Android app (CPython's Android build, or python-for-android's environment)."""
    return hasattr(sys, "getandroidapilevel") or "ANDROID_ARGUMENT" in os.environ or "ANDROID_PRIVATE" in os.environ


@dataclass(frozen=True)
class JavaClasses:
    """The Java classes the runtime calls, resolved on the main thread."""

    bridge: Any  # pyjnius class of org.pocketclip.ExecuTorchBridge


_resolved: list[JavaClasses] = []  # filled once by resolve_java_classes (a process-wide fact, like the JVM)


def resolve_java_classes() -> JavaClasses:
    """Look up the runtime's Java classes. Call it on the main thread, before any worker uses the runtime."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("resolve_java_classes must run on the main thread: elsewhere FindClass cannot see the APK")
    if not _resolved:
        from jnius import autoclass  # python-for-android's pyjnius recipe

        _resolved.append(JavaClasses(bridge=autoclass(BRIDGE_CLASS)))
    return _resolved[0]


class AndroidExecuTorchEncoders(Encoders):
    """Both programs loaded once (one ``ExecuTorchBridge`` each) and kept for the app's life."""

    backend = "android-executorch"

    def __init__(self, bundle: BundleInfo, classes: JavaClasses | None = None):
        if classes is None and not _resolved:
            raise ModelLoadError(f"{bundle.root}: the Android ExecuTorch bridge's Java classes were not resolved; "
                                 f"the app must call resolve_java_classes() on its main thread at start")
        classes = classes or _resolved[0]
        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self.image_batch_size = 32  # photos per indexing batch; the program batch is handled by batches_for
        self._programs: dict[str, Any] = {}
        for name, path in (("image", bundle.image_program), ("text", bundle.text_program)):
            try:
                self._programs[name] = classes.bridge(str(path))
            except Exception as e:  # jnius.JavaException carries the Java exception's message
                self.close()
                raise ModelLoadError(f"ExecuTorch (Android) cannot load the {name} program {path}: {e}") from e
        logger.info("loaded %s", self.describe())

    def _forward(self, name: str, data: np.ndarray) -> np.ndarray:
        """One program call: native-order bytes and the shape in, the first output's floats back."""
        program = self._programs[name]
        run = program.forwardFloats if data.dtype.kind == "f" else program.forwardLongs
        return np.asarray(run(data.tobytes(), list(data.shape)), dtype=np.float32)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        out = []
        for chunk, n in batches_for(np.asarray(pixels, dtype=np.float32), self.bundle.image_batch):
            out.append(self._forward("image", np.ascontiguousarray(chunk, dtype="=f4")).reshape(len(chunk), -1)[:n])
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        out = []
        for row in np.asarray(tokens, dtype=np.int64):
            seq = np.ascontiguousarray(self.bundle.fit_tokens(row[None, : sequence_length(row)]), dtype="=i8")
            out.append(self._forward("text", seq).reshape(1, -1))
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        for program in self._programs.values():
            program.destroy()
        self._programs = {}
