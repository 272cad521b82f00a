"""A fake compression run directory for the bench tests, shaped like compression.pipeline's, and the PNG check."""

from __future__ import annotations

import json
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run_dir(root: Path, embed_dim: int = 48) -> Path:
    """A fake compression run: student.json and a metrics.json shaped like compression.pipeline's."""
    root.mkdir(parents=True)
    (root / "student.json").write_text(
        json.dumps({"spec": {"embed_dim": embed_dim}, "preprocess": {"image_size": 32}})
    )

    def recall(base: float) -> dict[str, float]:
        r = {f"{d}_R@{k}": base + k for d in ("t2i", "i2t") for k in (1, 5, 10)}
        return {**r, "rsum": sum(r.values())}

    sizes = {
        f"{m}_{t}": {"params": p, "disk_mb": p * 4 / 1e6}
        for m, t, p in [
            ("teacher", "image", 3_000_000),
            ("teacher", "text", 7_000_000),
            ("student", "image", 1_000_000),
            ("student", "text", 6_000_000),
        ]
    }
    speed = {
        "batch_size": 64,
        "threads": 2,
        "device": "cpu",
        "actual_length": 20,
        "items_per_s": {
            "teacher_image": 100.0,
            "student_image": 300.0,
            "teacher_text": 200.0,
            "student_text": 300.0,
            "teacher_text_actual": 250.0,
            "student_text_actual": 400.0,
        },
    }
    metrics = {
        "retrieval": {
            "teacher_zero_shot": recall(10),
            "teacher_finetuned": recall(20),
            "student": recall(19),
            "student_untrained": recall(0),
        },
        "sizes": sizes,
        "speed": speed,
        "test_split": {"images": 100, "captions": 500},
    }
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root
