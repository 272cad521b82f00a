"""What the benchmark sections share: machine facts, timing statistics, atomic writes, child processes."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Self

import formats.atomic
from formats.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CHILD_MARK = "BENCH-CHILD-RESULT "  # prefix of the one stdout line a child process answers with
EXTRA_LIBRARIES = ("faiss-cpu", "pillow", "matplotlib")

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON in the order written (results read top to bottom), written atomically."""
    formats.atomic.atomic_write_json(path, obj, sort_keys=False)


class SkipSection(Exception):
    """Raised by a section that cannot run with what it was given; the message is recorded as the reason."""


# ------------------------------------------------------------------------------------------------
# the machine
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# the model a run measures
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What ``--model`` is, read from its JSON without loading any weights."""

    path: Path
    kind: str  # "run" (a compression run directory, PyTorch) or "bundle" (an export bundle)
    backend: str  # "torch", or the bundle manifest's backend ("executorch-xnnpack", "coreml")
    precision: str  # "fp32" for a run directory; the manifest's precision for a bundle
    embed_dim: int
    image_size: int
    run_dir: Path | None  # the run whose metrics.json describes the model (a bundle's source), if present


def _json_key(path: Path, *keys: str) -> Any:
    from formats.jsonfile import read_json_object

    value: Any = read_json_object(path, path.name)  # FormatError (a ValueError) naming the file
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path} has no {'.'.join(keys)}")
        value = value[key]
    return value


def read_model_info(path: str | Path) -> ModelInfo:
    """Facts of a run directory (student.json) or one export bundle (manifest.json). Raises ValueError
    naming the file and key when ``path`` is neither or lacks what is needed."""
    from formats.model_dir import BUNDLES, RUN, resolve_model

    model = resolve_model(path)  # ModelNotFoundError (a ValueError) when it is neither
    path = model.path
    if model.kind == BUNDLES:
        raise ValueError(f"{path} is a folder of bundles: pass one of them to --model (e.g. {model.root})")
    if model.kind == RUN:
        student = path / "student.json"
        return ModelInfo(
            path,
            "run",
            "torch",
            "fp32",
            int(_json_key(student, "spec", "embed_dim")),
            int(_json_key(student, "preprocess", "image_size")),
            path,
        )
    manifest = path / "manifest.json"
    source = Path(str((_json_key(manifest, "source") or {}).get("checkpoint") or ""))
    run_dir = source if source.parts and (source / "metrics.json").is_file() else None
    return ModelInfo(
        path,
        "bundle",
        str(_json_key(manifest, "backend")),
        str(_json_key(manifest, "precision")),
        int(_json_key(manifest, "embedding_dim")),
        int(_json_key(manifest, "image", "image_size")),
        run_dir,
    )


def fill_store(
    data_dir: Path, model_id: str, embeddings: Any, paths: Sequence[str], batch: int = 256
) -> None:
    """A store in ``data_dir`` holding ``embeddings`` (N, D) for ``paths`` as if indexed, written directly
    through ``EmbeddingStore`` (apply_plan + commit_batch a batch at a time), without encoding anything."""
    import hashlib

    from app.engine.scanner import ScannedFile, ScanPlan
    from app.engine.store import EmbeddingStore, IndexedPhoto

    if len(paths) != len(embeddings):
        raise ValueError(f"{len(paths)} paths for {len(embeddings)} embeddings")
    files = [ScannedFile(str(p), 3_000_000 + i, 1_700_000_000_000_000_000 + i) for i, p in enumerate(paths)]
    with EmbeddingStore(data_dir) as store:
        store.bind_model(model_id, int(embeddings.shape[1]))
        store.apply_plan(ScanPlan(new=files))
        ids = [row[0] for row in store.pending_after(0, len(files))]
        for s in range(0, len(files), batch):
            store.commit_batch(
                [
                    IndexedPhoto(
                        i, e, f.size, f.mtime_ns, hashlib.blake2b(f.path.encode(), digest_size=16).digest()
                    )
                    for i, e, f in zip(ids[s : s + batch], embeddings[s : s + batch], files[s : s + batch])
                ]
            )


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# child processes: fresh interpreters for cold starts and peak memory
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------


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
