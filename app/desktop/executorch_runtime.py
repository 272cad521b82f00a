"""ExecuTorch runtime (desktop Python): a bundle's .pte programs run by ``executorch.runtime``."""
from __future__ import annotations

import logging

import numpy as np

from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from app.engine.runtimes.bundle import BundleInfo, batches_for
from formats.text import sequence_length

logger = logging.getLogger(__name__)


class ExecuTorchEncoders(Encoders):
    """Both programs loaded once (``Runtime.load_program`` + ``load_method("forward")``) and kept."""

    backend = "executorch-xnnpack"

    def __init__(self, bundle: BundleInfo):
        try:
            import executorch.kernels.quantized  # noqa: F401  registers the kernels int8 programs call
            import torch
            from executorch.runtime import Runtime
        except ImportError as e:
            raise ModelLoadError(f"{bundle.root}: the ExecuTorch Python runtime is not installed ({e})") from e
        self._torch = torch
        self.bundle = bundle
        self.preprocess, self.tokenizer = bundle.preprocess, bundle.tokenizer
        self.embed_dim, self.model_id = bundle.embed_dim, bundle.model_id
        self.image_batch_size = 32  # photos per indexing batch; the program batch is handled by batches_for
        runtime = Runtime.get()
        self._methods = {}
        for name, path in (("image", bundle.image_program), ("text", bundle.text_program)):
            method = bundle.manifest[name].get("method", "forward")
            try:
                self._methods[name] = runtime.load_program(path).load_method(method)
            except (RuntimeError, ValueError, KeyError) as e:
                raise ModelLoadError(f"executorch.runtime cannot load the {name} program {path}: {e}") from e
        logger.info("loaded %s", self.describe())

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        torch, out = self._torch, []
        for chunk, n in batches_for(np.asarray(pixels, dtype=np.float32), self.bundle.image_batch):
            result = self._methods["image"].execute([torch.from_numpy(chunk)])[0]
            out.append(np.array(result.float().numpy()[:n]))
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        torch, out = self._torch, []
        for row in np.asarray(tokens, dtype=np.int64):  # the text program takes one sequence at a time
            seq = row[None, : sequence_length(row)]
            result = self._methods["text"].execute([torch.from_numpy(self.bundle.fit_tokens(seq))])[0]
            out.append(np.array(result.float().numpy()).reshape(1, -1))
        return l2_normalize(np.concatenate(out))

    def close(self) -> None:
        self._methods = {}
