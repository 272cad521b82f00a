"""Tests for bench.timing: the timing statistics every section reports."""

from __future__ import annotations

import pytest

from bench.timing import summarize_ms, time_calls


def test_summarize_ms():
    s = summarize_ms([0.003, 0.001, 0.002])
    assert s == {
        "p50_ms": pytest.approx(2.0),
        "p90_ms": pytest.approx(3.0),
        "min_ms": pytest.approx(1.0),
        "mean_ms": pytest.approx(2.0),
        "repeats": 3,
    }


def test_time_calls_warms_up_then_repeats_within_bounds():
    seen = []
    timing = time_calls(seen.append, ["a", "b"], warmup=3, budget_s=0.0, min_repeats=4, max_repeats=10)
    assert timing["repeats"] == 4 and len(seen) == 3 + 4
    assert seen[:3] == ["a", "b", "a"] and seen[3:] == ["a", "b", "a", "b"]  # cycles through the inputs
    assert 0 <= timing["min_ms"] <= timing["p50_ms"] <= timing["p90_ms"]
    assert time_calls(seen.append, [1], warmup=0, budget_s=10.0, max_repeats=7)["repeats"] == 7
    with pytest.raises(ValueError, match="at least one input"):
        time_calls(seen.append, [])
    with pytest.raises(ValueError, match="min_repeats"):
        time_calls(seen.append, [1], min_repeats=5, max_repeats=2)
