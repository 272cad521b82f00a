"""What the benchmark sections share: the JSON writer, SkipSection, and (re-exported from bench.machine,
bench.model_info, bench.timing, bench.child and bench.figures) machine facts, timing statistics, child
processes and report cells, so that ``from bench.common import ...`` keeps working."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import formats.atomic
from bench.child import CHILD_MARK, ChildResult, run_child
from bench.figures import fmt_ms, md_table, new_figure, save_figure
from bench.machine import (
    EXTRA_LIBRARIES,
    REPO,
    OtherCpu,
    cpu_model,
    describe_machine,
    display_path,
    git_commit,
    last_level_cache_bytes,
    machine_facts,
    memory_total_gb,
    other_cpu_sentence,
    own_cpu_seconds,
    system_busy_seconds,
)
from bench.model_info import ModelInfo, fill_store, read_model_info
from bench.timing import current_rss_mb, peak_rss_mb, summarize_ms, time_calls
from formats.atomic import atomic_write_bytes

__all__ = [
    "CHILD_MARK",
    "EXTRA_LIBRARIES",
    "REPO",
    "ChildResult",
    "ModelInfo",
    "OtherCpu",
    "SkipSection",
    "atomic_write_bytes",
    "atomic_write_json",
    "cpu_model",
    "current_rss_mb",
    "describe_machine",
    "display_path",
    "fill_store",
    "fmt_ms",
    "git_commit",
    "last_level_cache_bytes",
    "machine_facts",
    "md_table",
    "memory_total_gb",
    "new_figure",
    "other_cpu_sentence",
    "own_cpu_seconds",
    "peak_rss_mb",
    "read_model_info",
    "run_child",
    "save_figure",
    "summarize_ms",
    "system_busy_seconds",
    "time_calls",
]

logger = logging.getLogger(__name__)

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON in the order written (results read top to bottom), written atomically."""
    formats.atomic.atomic_write_json(path, obj, sort_keys=False)


class SkipSection(Exception):
    """Raised by a section that cannot run with what it was given; the message is recorded as the reason."""
