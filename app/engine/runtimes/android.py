"""Android bridge: a bundle's .pte programs run by the ExecuTorch Java API (org.pytorch.executorch), via pyjnius.

Written against the documented API of ExecuTorch's Android library (``executorch-android`` AAR):
``Module.load(String path)``, ``Tensor.fromBlob(FloatBuffer|LongBuffer, long[] shape)`` with direct
native-order buffers, ``EValue.from(Tensor)``, ``Module.forward(EValue...) -> EValue[]``,
``EValue.toTensor().getDataAsFloatArray()``. Imported only on Android (``jnius`` exists nowhere
else); it cannot be executed on this development machine, see the module's tests for what is checked.
"""
from __future__ import annotations

import logging
import sys

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for

logger = logging.getLogger(__name__)


def on_android() -> bool:
    """True inside an Android app (CPython's Android build, or python-for-android's environment)."""
    import os

    return hasattr(sys, "getandroidapilevel") or "ANDROID_ARGUMENT" in os.environ or "ANDROID_PRIVATE" in os.environ


class AndroidExecuTorchEncoders(Encoders):
    """Both ``org.pytorch.executorch.Module`` s loaded once and kept for the app's life."""

    backend = "android-executorch"

    def __init__(self, bundle: BundleInfo):
        try:
            from jnius import autoclass
        except ImportError as e:
            raise ModelLoadError(f"{bundle.root}: the Android ExecuTorch bridge needs pyjnius (Android only): {e}") from e
        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self.image_batch_size = 32  # photos per indexing batch; the program batch is handled by batches_for
        module = autoclass("org.pytorch.executorch.Module")
        self._Tensor = autoclass("org.pytorch.executorch.Tensor")
        self._evalue_from = getattr(autoclass("org.pytorch.executorch.EValue"), "from")  # `from` is a Python keyword
        self._ByteBuffer = autoclass("java.nio.ByteBuffer")
        self._native_order = autoclass("java.nio.ByteOrder").nativeOrder()
        self._modules = {}
        for name, path in (("image", bundle.image_program), ("text", bundle.text_program)):
            try:
                self._modules[name] = module.load(str(path))
            except Exception as e:  # jnius.JavaException carries the Java exception's message
                raise ModelLoadError(f"ExecuTorch (Android) cannot load the {name} program {path}: {e}") from e
        logger.info("loaded %s", self.describe())

    def _direct_buffer(self, array: np.ndarray):
        """A direct native-order java.nio.ByteBuffer holding the array's bytes (one bulk copy)."""
        data = np.ascontiguousarray(array)
        buf = self._ByteBuffer.allocateDirect(data.nbytes).order(self._native_order)
        buf.put(data.tobytes())  # bytes -> byte[] in one JNI call
        buf.rewind()
        return buf

    def _run(self, name: str, tensor) -> np.ndarray:
        outputs = self._modules[name].forward(self._evalue_from(tensor))
        return np.asarray(outputs[0].toTensor().getDataAsFloatArray(), dtype=np.float32)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        out = []
        for chunk, n in batches_for(np.asarray(pixels, dtype=np.float32), self.bundle.image_batch):
            tensor = self._Tensor.fromBlob(self._direct_buffer(chunk.astype("=f4")).asFloatBuffer(), list(chunk.shape))
            out.append(self._run("image", tensor).reshape(len(chunk), -1)[:n])
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        out = []
        for row in np.asarray(tokens, dtype=np.int64):
            seq = self.bundle.fit_tokens(row[None, : int(row.argmax()) + 1]).astype("=i8")
            tensor = self._Tensor.fromBlob(self._direct_buffer(seq).asLongBuffer(), list(seq.shape))
            out.append(self._run("text", tensor).reshape(1, -1))
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        for m in self._modules.values():
            m.destroy()
        self._modules = {}
