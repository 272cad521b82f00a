"""Tests for bench.child: a measurement in a fresh Python, its result or its failure."""

from __future__ import annotations

import pytest

from bench import child


def child_echo(started: float, value: int) -> dict:
    """A run_child target (called in a fresh Python by the next test)."""
    return {"started": started, "value": value}


def child_fail(started: float) -> dict:
    raise SystemExit(3)


def test_run_child_returns_the_result_and_reports_failures():
    ok = child.run_child("tests.bench.test_child:child_echo", {"value": 3})
    assert ok.result["value"] == 3 and ok.result["started"] >= ok.launched and ok.wall_s > 0
    with pytest.raises(RuntimeError, match=r"child tests.bench.test_child:child_fail failed \(exit code 3"):
        child.run_child("tests.bench.test_child:child_fail", {})
