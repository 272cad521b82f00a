"""Plots and Markdown cells of the benchmark reports: figures saved atomically, milliseconds, tables."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from formats.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically (nothing half-written on interrupt) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """(figure, axes) with the non-interactive Agg backend: one Axes for ``ncols=1``, else a row of
    ``ncols`` of them, each ``width`` x ``height`` inches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height))


def fmt_ms(ms: float | None) -> str:
    """A latency for a table: 3 significant figures, '-' when missing."""
    if ms is None:
        return "-"
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
