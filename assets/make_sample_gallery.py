"""Write ``assets/sample_gallery``: the first 60 test photos of the offline benchmark, as PNGs with their captions.

    python assets/make_sample_gallery.py

The offline benchmark is a pure function of its config (each image is drawn from its own generator
seeded by (seed, split, index)), so generating only the test split's first ``n`` images with the
offline default's seed and image size gives exactly ``test-000000`` .. ``test-0000NN`` of the
benchmark the default model is evaluated on. The app uses this folder as its gallery when none is
given. A development script: it imports the data generator, which the app itself never does.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from compression.config import load_config
from compression.data.synthetic import generate_synthetic, write_split_as_folder

# every other split is made as small as the generator allows: only the test split is written
SMALL = ["n_pretrain=1", "n_unpaired_images=1", "n_unpaired_texts=1", "n_train=1", "n_val=1"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60, help="test photos to write (default: 60)")
    p.add_argument("--out", type=Path, default=HERE / "sample_gallery", help="output folder (replaced)")
    args = p.parse_args(argv)
    cfg = load_config(None, [f"data.synthetic.{o}" for o in SMALL + [f"n_test={args.n}"]])
    data = generate_synthetic(cfg.data.synthetic, progress=False)
    if args.out.exists():
        shutil.rmtree(args.out)
    json_path = write_split_as_folder(data.test, args.out)
    print(f"wrote {args.n} photos to {args.out / 'images'} and their captions to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
