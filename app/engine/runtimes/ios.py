"""iOS bridge: a bundle's .mlpackage programs run by Core ML (CoreML.framework), via pyobjus.

Written against Apple's documented Core ML API: ``+[MLModel compileModelAtURL:error:]`` (an
.mlpackage must be compiled to .mlmodelc on device; the result is cached in the app's
Library/Caches, since the bundle itself sits inside the signed, read-only .app),
``+[MLModel modelWithContentsOfURL:error:]``, ``-[MLMultiArray initWithShape:dataType:error:]`` and
its ``dataPointer``, ``-[MLDictionaryFeatureProvider initWithDictionary:error:]``,
``-[MLModel predictionFromFeatures:error:]``, ``-[MLFeatureValue multiArrayValue]``. Bulk data moves
through ``dataPointer`` with ctypes (pyobjus returns a void* as an object whose ``arg_ref`` is the
address). Imported only on iOS; it cannot be executed on this development machine.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for
from formats.text import sequence_length

logger = logging.getLogger(__name__)

# MLMultiArrayDataType values (CoreML/MLMultiArray.h): 0x10000 | bits for floats, 0x20000 | bits for ints
ML_FLOAT32 = 0x10000 | 32
ML_INT32 = 0x20000 | 32


def on_ios() -> bool:
    """True inside an iOS app (CPython 3.13+ reports 'ios'; kivy-ios builds report Darwin on an iPhone/iPad)."""
    if sys.platform == "ios":
        return True
    return platform.system() == "Darwin" and os.uname().machine.startswith(("iPhone", "iPad"))


def ios_cache_dir() -> Path:
    """Where compiled models are kept: the sandbox's ``Library/Caches`` (writable, not backed up; iOS may
    empty it when space runs low, and the model is then compiled again)."""
    return Path(os.path.expanduser("~")) / "Library" / "Caches" / "pocketclip" / "coreml"


class IOSCoreMLEncoders(Encoders):
    """Both compiled ``MLModel`` s loaded once and kept."""

    backend = "ios-coreml"

    def __init__(self, bundle: BundleInfo, compiled_cache: str | Path | None = None):
        try:
            from pyobjus import autoclass, objc_str
            from pyobjus.dylib_manager import load_framework
        except ImportError as e:
            raise ModelLoadError(f"{bundle.root}: the iOS Core ML bridge needs pyobjus (iOS only): {e}") from e
        load_framework("/System/Library/Frameworks/CoreML.framework")
        self._autoclass, self._objc_str = autoclass, objc_str
        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self.image_batch_size = 32  # photos per indexing batch; the program batch is handled by batches_for
        self._MLModel = autoclass("MLModel")
        self._MLMultiArray = autoclass("MLMultiArray")
        self._Provider = autoclass("MLDictionaryFeatureProvider")
        self._FeatureValue = autoclass("MLFeatureValue")
        self._NSNumber = autoclass("NSNumber")
        self._NSURL = autoclass("NSURL")
        cache = Path(compiled_cache or ios_cache_dir())
        self._models = {}
        self._io = {name: (bundle.manifest[name]["input"]["name"], bundle.manifest[name]["output"]["name"])
                    for name in ("image", "text")}
        for name, path in (("image", bundle.image_program), ("text", bundle.text_program)):
            try:
                self._models[name] = self._load(path, cache / f"{name}-{bundle.model_id}.mlmodelc")
            except Exception as e:  # pyobjus.ObjcException, or a None model when Core ML reports an error
                raise ModelLoadError(f"Core ML (iOS) cannot load the {name} program {path}: {e}") from e
        logger.info("loaded %s", self.describe())

    def _url(self, path: Path):
        return self._NSURL.fileURLWithPath_(self._objc_str(str(path)))

    def _load(self, package: Path, compiled: Path):
        if not compiled.is_dir():  # compile once; Core ML writes it to a temporary folder
            tmp = self._MLModel.compileModelAtURL_error_(self._url(package), None)
            if tmp is None:
                raise ModelLoadError(f"Core ML could not compile {package}")
            compiled.parent.mkdir(parents=True, exist_ok=True)
            tmp_path = tmp.path.UTF8String()
            shutil.move(tmp_path.decode() if isinstance(tmp_path, bytes) else tmp_path, compiled)
        model = self._MLModel.modelWithContentsOfURL_error_(self._url(compiled), None)
        if model is None:
            raise ModelLoadError(f"Core ML could not open the compiled model {compiled}")
        return model

    def _multiarray(self, array: np.ndarray, dtype: int, ctype: str):
        shape = [self._NSNumber.numberWithInteger_(int(d)) for d in array.shape]
        from pyobjus import objc_arr

        marray = self._MLMultiArray.alloc().initWithShape_dataType_error_(objc_arr(*shape), dtype, None)
        data = np.ascontiguousarray(array, dtype=ctype)  # a new MLMultiArray is dense, C order
        ctypes.memmove(marray.dataPointer().arg_ref, data.ctypes.data, data.nbytes)
        return marray

    def _predict(self, name: str, marray, count: int) -> np.ndarray:
        inp, outp = self._io[name]
        from pyobjus import objc_dict

        features = self._Provider.alloc().initWithDictionary_error_(
            objc_dict({inp: self._FeatureValue.featureValueWithMultiArray_(marray)}), None)
        result = self._models[name].predictionFromFeatures_error_(features, None)
        if result is None:
            raise RuntimeError(f"Core ML prediction of the {name} program failed")
        out = result.featureValueForName_(self._objc_str(outp)).multiArrayValue()
        buf = (ctypes.c_float * count).from_address(out.dataPointer().arg_ref)  # output is float32, dense
        return np.frombuffer(buf, dtype=np.float32).copy()

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        out = []
        for chunk, n in batches_for(np.asarray(pixels, dtype=np.float32), self.bundle.image_batch):
            vec = self._predict("image", self._multiarray(chunk, ML_FLOAT32, "=f4"), len(chunk) * self.embed_dim)
            out.append(vec.reshape(len(chunk), -1)[:n])
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        out = []
        for row in np.asarray(tokens, dtype=np.int64):
            seq = self.bundle.fit_tokens(row[None, : sequence_length(row)])
            out.append(self._predict("text", self._multiarray(seq, ML_INT32, "=i4"), self.embed_dim).reshape(1, -1))
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        self._models = {}
