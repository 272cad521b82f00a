"""What a run records of the machine it ran on: CPU, memory, cache, libraries, commit, and how busy
the rest of the machine was while it measured."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Self

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
EXTRA_LIBRARIES = ("faiss-cpu", "pillow", "matplotlib")

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's marketing name from /proc/cpuinfo ("model name"), else what platform knows."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def memory_total_gb(meminfo: str | None = None) -> float | None:
    """Installed RAM in GB (1e9 bytes) from /proc/meminfo's MemTotal (kB), None where unknown."""
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 1)
    return None


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's largest cache level (Linux sysfs), None where unknown."""
    best: tuple[int, int] | None = None
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        size = int(text.rstrip("KMG")) * scale
        if best is None or level > best[0]:
            best = (level, size)
    return best[1] if best else None


def git_commit() -> str | None:
    """HEAD's short hash, with "+dirty" when tracked files differ from it; None outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_facts(threads: int | None, quick: bool) -> dict[str, Any]:
    """Everything a reader needs to know where the absolute figures of a run came from."""
    import faiss
    import torch
    from threadpoolctl import threadpool_info

    from export.bundle import library_versions

    versions = library_versions()
    for name in EXTRA_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    blas = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": memory_total_gb(),
        "last_level_cache_bytes": last_level_cache_bytes(),
        "os": platform.platform(),
        "versions": versions,
        "blas": blas,
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "threads": {
            "requested": threads,
            "torch": torch.get_num_threads(),
            "faiss": faiss.omp_get_max_threads(),
        },
        "quick": quick,
    }


def system_busy_seconds(stat: str | None = None) -> float | None:
    """CPU seconds every process on the machine has spent busy since boot (the first line of
    /proc/stat: user, nice, system, irq, softirq, steal), None where there is no /proc/stat."""
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return None
    fields = stat.splitlines()[0].split() if stat else []
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (``os.times``)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherCpu:
    """How much of the machine other processes used while a block ran::

        with OtherCpu() as other:
            ...  # timing
        other.share  # 0.0 on an idle machine; 0.5: half of all cores were busy with other work

    The machine's busy CPU time (/proc/stat) minus this process's and its waited-for children's, over
    the block's wall time and all cores. Unlike the load average, the benchmark's own threads do not
    count, and nothing lags. ``share`` is None where /proc/stat is missing (macOS).
    """

    SHARED = 0.1  # above this share, absolute figures were measured on a shared machine

    def __init__(
        self,
        busy_seconds: Callable[[], float | None] = system_busy_seconds,
        own_seconds: Callable[[], float] = own_cpu_seconds,
        clock: Callable[[], float] = time.perf_counter,
        cores: int | None = None,
    ) -> None:
        self._read = (busy_seconds, own_seconds, clock)  # replaceable, for tests
        self.cores = cores or os.cpu_count() or 1
        self.share: float | None = None
        self.other_cpu_s: float | None = None
        self.wall_s = 0.0

    def __enter__(self) -> Self:
        self._start = tuple(read() for read in self._read)
        return self

    def __exit__(self, *exc: object) -> None:
        (busy0, own0, t0), (busy, own, t) = self._start, tuple(read() for read in self._read)
        self.wall_s = t - t0
        if busy0 is None or busy is None or self.wall_s <= 0:
            return
        other = max(0.0, (busy - busy0) - (own - own0))
        self.other_cpu_s = round(other, 2)
        self.share = round(min(1.0, other / (self.wall_s * self.cores)), 3)

    def as_dict(self) -> dict[str, Any]:
        return {"share": self.share, "other_cpu_s": self.other_cpu_s, "wall_s": round(self.wall_s, 2),
                "cores": self.cores}


def other_cpu_sentence(other: dict[str, Any] | None) -> str:
    """What ``OtherCpu.as_dict()`` says for a reader: one sentence, a warning when the machine was shared."""
    if not other or other.get("share") is None:
        return ""
    text = (
        f"Other processes used {other['share']:.0%} of the {other['cores']} cores during these "
        f"{other['wall_s']:.0f} s"
    )
    if other["share"] > OtherCpu.SHARED:
        return text + ": the machine was shared, so the absolute figures are unreliable (rerun when idle)."
    return text + "."


def describe_machine(facts: dict[str, Any]) -> str:
    """One Markdown paragraph naming the machine, software and run of ``facts``."""
    v = facts["versions"]
    llc = facts.get("last_level_cache_bytes")
    load = facts.get("load_average")
    threads = facts["threads"]
    return (
        f"{facts['cpu']}, {facts['cores']} cores, {facts['ram_gb']} GB RAM"
        + (f", {llc / 2**20:.0f} MiB last-level cache" if llc else "")
        + f"; {facts['os']}; Python {v.get('python')}, torch {v.get('torch')}, numpy {v.get('numpy')}, "
        f"faiss {v.get('faiss-cpu')}, executorch {v.get('executorch')}; "
        f"threads: torch {threads['torch']}, FAISS {threads['faiss']}"
        + (f" (--threads {threads['requested']})" if threads.get("requested") else " (library defaults)")
        + f". Commit {facts.get('git_commit')}, {facts['date']}"
        + (f", load average at start {load[0]:.2f}" if load else "")
        + (", quick run." if facts.get("quick") else ", full run.")
    )


def display_path(path: str | Path) -> str:
    """A path as results show it: relative to the repository when inside it (no machine-specific prefix)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
