"""Per-photo cost of the Android bridge on this machine's JVM (stand-in ExecuTorch classes):

    .venv/bin/python tests/phones/bridge_cost.py

For each input size: the round trip the engine makes per photo from a worker thread
(AndroidExecuTorchEncoders.encode_images: numpy -> bytes -> byte[] -> direct buffer -> Tensor ->
forward -> float[] -> numpy), the same calls made inside Java alone (JavaOnly), and their
difference, i.e. what crossing from Python costs; each the best of TRIALS runs. The stand-in's forward is a cheap loop over the
input, not a model: on a phone the model's own time comes on top.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TRIALS = 5  # best of: the machine is shared, the minimum is the least disturbed run

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]


def main() -> int:
    from phone_parts import build, standin_bundle

    parts = build()
    import jnius_config

    jnius_config.set_classpath(str(parts.classpath))
    os.environ["ANDROID_ARGUMENT"] = str(HERE)
    from jnius import autoclass

    from app.engine.runtimes import load_encoders
    from app.engine.runtimes.android import resolve_java_classes

    resolve_java_classes()
    java_only = autoclass("org.pocketclip.bench.JavaOnly")
    bundle = standin_bundle(Path(tempfile.mkdtemp()) / "b")
    encoders = load_encoders(bundle)
    reps = 200
    for size in (32, 224):
        pixels = np.random.default_rng(0).normal(size=(reps, 3, size, size)).astype(np.float32)
        timing: dict[str, float] = {}

        def worker(pixels: np.ndarray = pixels, timing: dict[str, float] = timing) -> None:
            encoders.encode_images(pixels[:8])  # warm-up
            for _ in range(TRIALS):
                start = time.perf_counter()
                encoders.encode_images(pixels)
                timing["round_trip"] = min(timing.get("round_trip", 1e9), (time.perf_counter() - start) / reps)

        thread = threading.Thread(target=worker, name="indexer")
        thread.start()
        thread.join()
        program = str(bundle / "student_image_xnnpack_fp32.pte")
        inside = min(java_only.forwardFloatsNanos(program, size, reps) for _ in range(TRIALS)) / reps / 1e9
        print(f"{size}x{size} px: round trip {timing['round_trip'] * 1e3:.3f} ms/photo, Java side alone "
              f"{inside * 1e3:.3f} ms/photo, crossing from Python {(timing['round_trip'] - inside) * 1e3:.3f} ms/photo")
    encoders.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
