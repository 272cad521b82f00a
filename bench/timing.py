"""Timing statistics of repeated calls and this process's memory (RSS now and at peak)."""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


def time_calls(
    fn: Callable[[Any], Any],
    inputs: Sequence[Any],
    warmup: int = 2,
    budget_s: float = 0.5,
    min_repeats: int = 5,
    max_repeats: int = 100,
) -> dict[str, float]:
    """Wall time of ``fn(x)``, cycling through ``inputs``, after ``warmup`` untimed calls.

    Repeats until ``budget_s`` is spent (at least ``min_repeats``, at most ``max_repeats`` calls).
    Returns p50/p90/min/mean in milliseconds and the number of timed calls.
    """
    if not len(inputs):
        raise ValueError("time_calls needs at least one input")
    if min_repeats < 1 or max_repeats < min_repeats:
        raise ValueError(f"need 1 <= min_repeats <= max_repeats, got {min_repeats} and {max_repeats}")
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    times: list[float] = []
    spent = 0.0
    while len(times) < max_repeats and (len(times) < min_repeats or spent < budget_s):
        x = inputs[len(times) % len(inputs)]
        t0 = time.perf_counter()
        fn(x)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return summarize_ms(times)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/min/mean (ms) and count of a list of durations in seconds."""
    ms = sorted(1e3 * t for t in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": p90,
        "min_ms": ms[0],
        "mean_ms": statistics.fmean(ms),
        "repeats": len(ms),
    }


def _proc_status_mb(key: str) -> float | None:
    """A memory figure of /proc/self/status (kB there) in MB; None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def current_rss_mb() -> float | None:
    """This process's resident set size now, in MB (Linux; None elsewhere)."""
    return _proc_status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    Linux: VmHWM of /proc/self/status. Not ``getrusage``'s ru_maxrss, which a child inherits from
    its parent through fork and keeps across exec: a child of a large process would report the
    parent's peak. Elsewhere: ru_maxrss (kB on Linux, bytes on macOS).
    """
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
