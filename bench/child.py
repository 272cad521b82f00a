"""Child processes: fresh interpreters for cold starts and peak memory, answering with one marked stdout line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.machine import REPO

logger = logging.getLogger(__name__)

CHILD_MARK = "BENCH-CHILD-RESULT "  # prefix of the one stdout line a child process answers with

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


_CHILD_CODE = (
    "import time; started = time.time()\n"
    "import importlib, json, sys\n"
    "module, name = sys.argv[1].rsplit(':', 1)\n"
    "out = getattr(importlib.import_module(module), name)(started=started, **json.loads(sys.argv[2]))\n"
    f"print({CHILD_MARK!r} + json.dumps(out), flush=True)\n"
)


@dataclass
class ChildResult:
    """What a child process returned, and when (``time.time()``) the parent launched it."""

    result: dict[str, Any]
    launched: float
    wall_s: float


def run_child(target: str, kwargs: dict[str, Any], timeout_s: float = 900) -> ChildResult:
    """Run ``module:function(started=<wall time of the child's first line>, **kwargs)`` in a fresh Python.

    The function must return something JSON-serialisable. The child's stderr (logs, tracebacks)
    goes to this process's stderr; a failure raises RuntimeError naming the target.
    """
    cmd = [sys.executable, "-c", _CHILD_CODE, target, json.dumps(kwargs)]
    launched = time.time()
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"child {target} did not finish in {timeout_s:.0f} s") from e
    wall = time.perf_counter() - t0
    answers = [line for line in done.stdout.splitlines() if line.startswith(CHILD_MARK)]
    if done.returncode != 0 or not answers:
        raise RuntimeError(
            f"child {target} failed (exit code {done.returncode}; its stderr is above); "
            f"stdout tail: {done.stdout[-500:]!r}"
        )
    return ChildResult(json.loads(answers[-1][len(CHILD_MARK) :]), launched, wall)
