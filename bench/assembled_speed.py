"""Eager PyTorch CPU speed of the assembled teacher's and its MoTIS student's encoders, side by side.

    python -m bench.assembled_speed [--threads 1] [--repeats 5] [--json]

Same process, same inputs, interleaved, best of ``--repeats``: the ratio is what to read on a shared
machine. Images at each tower's size (Lite2 260 px, Lite0 224 px); texts are clip-art-like captions.
This is eager PyTorch, not the ExecuTorch XNNPACK programs the issue's speed target names.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def _best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.assembled_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    from compression.models.assembled import AssembledTeacher, SharedEncoder, SharedEncoderConfig
    from compression.models.assembled_student import AssembledStudentConfig, student_from_teacher
    from compression.models.pretrained_towers import create_efficientnet_lite, create_minilm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = AssembledTeacher(create_efficientnet_lite("efficientnet_lite2"), create_minilm(),
                               SharedEncoder(SharedEncoderConfig())).eval()
    student = student_from_teacher(teacher, create_efficientnet_lite("efficientnet_lite0"), AssembledStudentConfig()).eval()
    captions = ["red apple on a tree", "sailing boat on the sea with a lighthouse", "cartoon cat", "house",
                "a man riding a bicycle in the park", "blue star", "vintage car drawing", "flower bouquet in a vase"]
    rows = {}
    with torch.inference_mode():
        for batch in (1, 8):
            ids = teacher.tokenize(captions[:batch])
            img_t, img_s = torch.randn(batch, 3, 260, 260), torch.randn(batch, 3, 224, 224)
            t_img = _best(lambda x=img_t: teacher.encode_image(x), args.repeats)
            s_img = _best(lambda x=img_s: student.encode_image(x), args.repeats)
            t_txt = _best(lambda x=ids: teacher.encode_text(x), args.repeats)
            s_txt = _best(lambda x=ids: student.encode_text(x), args.repeats)
            rows[f"batch {batch}"] = {
                "image_ms": {"teacher": 1e3 * t_img, "student": 1e3 * s_img, "speedup": t_img / s_img},
                "text_ms": {"teacher": 1e3 * t_txt, "student": 1e3 * s_txt, "speedup": t_txt / s_txt},
            }
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| batch | tower | teacher ms | student ms | speed-up |\n|---|---|---|---|---|")
        for b, r in rows.items():
            for tower in ("image", "text"):
                m = r[f"{tower}_ms"]
                print(f"| {b.split()[1]} | {tower} | {m['teacher']:.1f} | {m['student']:.1f} | {m['speedup']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
