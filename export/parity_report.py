"""What one parity run measured for one bundle, and the plain-text table ``python -m export.parity`` prints.

Kept apart from the measuring (``export.parity``) so that reading or printing a report needs neither
the runtimes nor the training data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from export.source import ExportSource

KS = (1, 5, 10)


@dataclass
class EncoderParity:
    """Cosine between PyTorch and the program over ``n`` real samples."""

    program: str
    megabytes: float
    n: int
    cos_min: float | None  # None: not measured (no runtime here)
    cos_mean: float | None
    threshold: float

    @property
    def passed(self) -> bool:
        return self.cos_min is not None and self.cos_min >= self.threshold


@dataclass
class ParityReport:
    """Everything one parity run measured for one bundle (or why prediction was skipped)."""

    bundle: str
    backend: str
    precision: str
    n_images: int
    n_captions: int
    image: EncoderParity | None
    text: EncoderParity | None
    recall_pytorch: dict[str, float]
    recall_exported: dict[str, float] | None
    length_check: dict[str, Any] | None
    tokenizer_check: dict[str, Any]
    runtime: str | None
    skipped: str | None = None
    structure: dict[str, Any] | None = None
    emulation: dict[str, Any] | None = None  # fp16 estimate in PyTorch when the package cannot run here
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out

    def summary(self) -> dict[str, Any]:
        """What a manifest records of this run: the measurements and a status, without local paths."""
        out = self.to_dict()
        out.pop("bundle", None)
        out["status"] = "skipped" if self.skipped else ("passed" if self.passed else "failed")
        return out


def _recall_cells(r: dict[str, float] | None) -> list[str]:
    if r is None:
        return ["-", "-", "-"]
    t2i = "/".join(f"{r[f't2i_R@{k}']:.1f}" for k in KS)
    i2t = "/".join(f"{r[f'i2t_R@{k}']:.1f}" for k in KS)
    return [t2i, i2t, f"{r['rsum']:.1f}"]


def _cos_cell(e: EncoderParity | None) -> str:
    if e is None or e.n == 0:
        return "skipped"
    return f"{e.cos_min:.5f}/{e.cos_mean:.5f}"


def format_table(reports: list[ParityReport], source: ExportSource | None = None) -> str:
    """A plain-text table: one row for PyTorch, one per bundle, and the teacher's sizes if known."""
    head = [
        "program",
        "prec",
        "image MB",
        "text MB",
        "image cos min/mean",
        "text cos min/mean",
        "t2i R@1/5/10",
        "i2t R@1/5/10",
        "RSUM",
    ]
    rows = []
    if reports:
        r0 = reports[0]
        sizes = (source.tower_sizes_mb() if source is not None else None) or {}
        student_mb = [f"{sizes[k]:.2f}" if k in sizes else "-" for k in ("student_image", "student_text")]
        rows.append(
            [
                f"PyTorch student ({r0.n_images} img / {r0.n_captions} capt)",
                "fp32",
                *student_mb,
                "ref",
                "ref",
                *_recall_cells(r0.recall_pytorch),
            ]
        )
    for r in reports:
        name = f"{r.backend} ({Path(r.bundle).name})"
        status = "" if r.passed else "  FAIL"
        if r.skipped:
            status = "  (prediction skipped)"
        rows.append(
            [
                name + status,
                r.precision,
                f"{r.image.megabytes:.2f}",
                f"{r.text.megabytes:.2f}",
                _cos_cell(r.image),
                _cos_cell(r.text),
                *_recall_cells(r.recall_exported),
            ]
        )
        if r.emulation:
            e = r.emulation
            rows.append(
                [
                    "  fp16 emulated in PyTorch (not the package)",
                    "fp16",
                    "",
                    "",
                    f"{e['image_cos_min']:.5f}/{e['image_cos_mean']:.5f}",
                    f"{e['text_cos_min']:.5f}/{e['text_cos_mean']:.5f}",
                    *_recall_cells(e["recall"]),
                ]
            )
    sizes = (source.tower_sizes_mb() if source is not None else None) or {}
    if "teacher_image" in sizes and "teacher_text" in sizes:
        rows.append(
            [
                "teacher (fp32 weights, not exported)",
                "fp32",
                f"{sizes['teacher_image']:.2f}",
                f"{sizes['teacher_text']:.2f}",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    notes = []
    for r in reports:
        if r.skipped:
            weights = {enc: info["weights"] for enc, info in (r.structure or {}).items()}
            notes.append(
                f"{Path(r.bundle).name}: {r.skipped}; packages validated instead (ML program, named inputs/outputs, "
                f"shapes, token lengths, weight storage {weights})"
            )
        if r.length_check:
            lc = r.length_check
            notes.append(
                f"{Path(r.bundle).name}: text at actual length vs length {lc['compared_with_length']}: "
                f"max |diff| {lc['max_abs_diff']:.1e} over {lc['n']} captions"
            )
        for f in r.failures:
            notes.append(f"FAIL {Path(r.bundle).name}: {f}")
    return "\n".join(lines + notes)
