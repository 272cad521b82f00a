"""Peak memory of reading, decoding and preprocessing one photo, for the worst inputs the decoder accepts or meets.

    python tests/engine/hostile/measure_memory.py [--image-size 224] [--code DIR ...]

Each input is loaded by ``app.engine.decode.load_photo`` in a fresh child process; the child's peak
resident set (``ru_maxrss`` from wait4) minus that of a child loading a 16x16 PNG is the memory that
photo costs. ``--code DIR`` measures another checkout side by side (e.g. the code before a fix); the
children run under an 8 GiB address-space limit, so a runaway allocation fails instead of swapping.
Not a test; figures depend on the Pillow build.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import sys, time
from app.engine.decode import ImagePreprocess, load_photo, PhotoDecodeError
pre = ImagePreprocess({size}, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
t = time.perf_counter()
try:
    load_photo(sys.argv[1], pre)
    outcome = "decoded"
except PhotoDecodeError as e:
    outcome = "skipped: " + e.reason
except MemoryError:
    outcome = "MemoryError"
print(outcome, round(time.perf_counter() - t, 2))
"""
ADDRESS_SPACE_LIMIT = 8 * 1024**3


def _save(path: Path, image: Image.Image, **kw) -> Path:
    image.save(path, **kw)
    return path


def make_inputs(d: Path) -> dict[str, Path]:
    from hostile_gallery import png_with_text_bomb

    grey16 = Image.frombytes("I;16", (7999, 7999), np.zeros((7999, 7999), "<u2").tobytes())
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4000, 4000, 3), dtype=np.uint8), "RGB")
    (d / "ztxt.png").write_bytes(png_with_text_bomb())
    return {
        "baseline 16x16 PNG": _save(d / "tiny.png", Image.new("RGB", (16, 16))),
        "8000x8000 RGB PNG (64 Mpx, the pixel limit)": _save(d / "rgb64.png", Image.new("RGB", (8000, 8000), 90)),
        "7999x7999 16-bit grey PNG (124 KB)": _save(d / "grey16.png", grey16),
        "500000x1 PNG": _save(d / "strip500k.png", Image.new("L", (500_000, 1), 7)),
        "10000000x1 PNG": _save(d / "strip10m.png", Image.new("L", (10_000_000, 1), 7)),
        "4000x4000 noise PNG (48 MB file)": _save(d / "noise.png", noise, compress_level=1),
        "8000x8000 JPEG (draft decode)": _save(d / "big.jpg", Image.new("RGB", (8000, 8000), 40), quality=90),
        "PNG with a 200 MB zTXt bomb": d / "ztxt.png",
    }


def peak_rss_mib(code_dir: Path, path: Path, image_size: int) -> tuple[float, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(size=image_size), str(path)], cwd=code_dir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=limit)  # noqa: PLW1509 - this script starts no threads
    out = proc.stdout.read().decode().strip()
    err = proc.stderr.read().decode().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    outcome = out or (err.splitlines()[-1] if err else f"exit {proc.returncode}")
    return usage.ru_maxrss / 1024, outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--code", type=Path, action="append", default=[],
                   help="checkouts to measure (default: this one)")
    args = p.parse_args(argv)
    codes = args.code or [Path(__file__).resolve().parents[3]]
    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        print(f"image size {args.image_size}; MiB above the baseline child (peak RSS), outcome, seconds")
        for code in codes:
            print(f"\n== {code}")
            base, _ = peak_rss_mib(code, inputs["baseline 16x16 PNG"], args.image_size)
            print(f"{'baseline child peak RSS':<46} {base:8.0f} MiB")
            for name, path in inputs.items():
                if name.startswith("baseline"):
                    continue
                t = time.perf_counter()
                peak, outcome = peak_rss_mib(code, path, args.image_size)
                print(f"{name:<46} {peak - base:+8.0f} MiB  {outcome:<40} ({time.perf_counter() - t:.1f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
