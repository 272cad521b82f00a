"""ONNX Runtime (desktop): a bundle's .onnx programs run by ``onnxruntime``, with neither torch nor executorch.

Why it exists: the ExecuTorch Python runtime imports ``executorch.exir`` and torch (seconds, ~1 GB
resident) before it runs a program that takes milliseconds; ONNX Runtime is one native library with
numpy in and out. The image program takes any batch (one call per indexing batch), the text program
any length from 2 to the context (a query is fed at its own length). The image program's session is
created on the first image batch: a search process never needs it, and building it (graph
optimisation) was a tenth of launch-to-first-result.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for
from formats.text import sequence_length

logger = logging.getLogger(__name__)


class ONNXEncoders(Encoders):
    """Both programs as ONNX Runtime sessions, created once and kept (CPU execution provider); the
    image session on first use."""

    backend = "onnx"

    def __init__(self, bundle: BundleInfo, threads: int | None = None):
        """``threads``: ONNX Runtime's intra-op threads for both sessions (None: its default, the cores)."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ModelLoadError(f"{bundle.root}: ONNX Runtime is not installed ({e}); pip install onnxruntime") from e
        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self._ort = ort
        self._options = ort.SessionOptions()
        if threads:
            self._options.intra_op_num_threads = threads
        for path in (bundle.image_program, bundle.text_program):
            if not path.is_file():
                raise ModelLoadError(f"{bundle.root}: program {path.name} is missing")
        self._sessions, self._inputs = {}, {}
        self._open_lock = threading.Lock()
        self._open("text")
        logger.info("loaded %s", self.describe())

    def _open(self, name: str):
        """The session of the ``name`` program, created on first use. Raises ModelLoadError."""
        session = self._sessions.get(name)
        if session is not None:
            return session
        with self._open_lock:
            if name not in self._sessions:
                path = self.bundle.image_program if name == "image" else self.bundle.text_program
                try:
                    session = self._ort.InferenceSession(str(path), self._options, providers=["CPUExecutionProvider"])
                except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
                    raise ModelLoadError(f"onnxruntime cannot load the {name} program {path}: {e}") from e
                self._inputs[name] = session.get_inputs()[0].name
                self._sessions[name] = session
            return self._sessions[name]

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        out = []
        for chunk, n in batches_for(np.ascontiguousarray(pixels, dtype=np.float32), self.bundle.image_batch):
            out.append(self._open("image").run(None, {self._inputs["image"]: chunk})[0][:n])
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        session, name, out = self._sessions["text"], self._inputs["text"], []
        for row in np.asarray(tokens, dtype=np.int64):  # the text program takes one sequence at a time
            seq = self.bundle.fit_tokens(row[None, : sequence_length(row)])
            out.append(session.run(None, {name: seq})[0].reshape(1, -1))
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        self._sessions = {}
