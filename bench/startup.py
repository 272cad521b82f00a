"""Startup section: cold start to the first search result in a fresh process, and warm query latency.

The index holds 10k photos written straight into a real store (random unit embeddings; every row
points at a real file, hard links to one small JPEG, so the engine's "still on disk?" check runs as
in use). A fresh Python process then does what the app or ``python -m app.engine search`` does:
import the engine, load the model, open the index read-only, answer one text query; each step is
timed from the moment the parent launched the process. The same process then answers more queries
warm, timed end to end and step by step (tokenize, text encoder, top-10 + paths).

The runtime is the one ``--model`` selects: PyTorch for a run directory, ExecuTorch for a bundle of
.pte programs. "Cold" means a new process; the files are in the OS page cache (they were just
written or read), as on a phone that opened the app recently.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    display_path,
    fill_store,
    md_table,
    new_figure,
    read_model_info,
    run_child,
    save_figure,
    time_calls,
)

logger = logging.getLogger(__name__)

STORE_PHOTOS = 10_000
COLD_STARTS = {True: 2, False: 5}
K = 10
QUERIES = [
    "a red circle on the left of a blue square",
    "a dog running on the beach at sunset",
    "two people smiling at a birthday party",
    "a small green triangle above a large yellow star",
    "snowy mountains under a clear sky",
    "a plate of pasta on a wooden table",
    "a cat sleeping on a sofa",
    "the front of a white car in the city",
    "a crimson hoop in the lower middle",
    "children playing football in a park",
]
STAGES = (
    ("interpreter", "process launch to the first line (Python start)"),
    ("imports", "imports: numpy, the engine, torch where the runtime needs it"),
    ("model_load", "model load (weights, tokenizer, runtime)"),
    ("store_open", "open the index (read-only)"),
    ("first_query", "first query: tokenize + encode + snapshot + top-10"),
)


def build_index(work_dir: Path, model: Path, n: int = STORE_PHOTOS) -> dict[str, Any]:
    """A store of ``n`` photos for ``model`` (its id and size) in work_dir/startup-index, and its facts."""
    import numpy as np

    from app.desktop.models import load_model

    with load_model(model) as enc:
        model_id, dim, backend = enc.model_id, enc.embed_dim, enc.backend
    gallery = work_dir / "startup-gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    first = gallery / "IMG_00000.jpg"
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 140, 200)).save(first, "JPEG")
    paths = [first] + [gallery / f"IMG_{i:05d}.jpg" for i in range(1, n)]
    for p in paths[1:]:
        if not p.exists():
            os.link(first, p)
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    data = work_dir / "startup-index"
    t0 = time.perf_counter()
    fill_store(data, model_id, emb, [str(p) for p in paths], batch=1000)
    return {
        "photos": n,
        "dim": dim,
        "backend": backend,
        "model_id": model_id,
        "data_dir": str(data),
        "fill_s": time.perf_counter() - t0,
    }


def cold_start_in_child(
    started: float, model: str, data_dir: str, threads: int, queries: list[str], warm: bool
) -> dict[str, Any]:
    """Runs in a fresh process (bench.common.run_child): import, load, open, first query; then, if
    ``warm``, the warm query latencies. Times are ``time.time()`` stamps for the parent to subtract."""
    stamps = {"started": started, "harness": time.time()}
    import importlib

    import numpy as np  # noqa: F401  (timed: the engine needs it)

    from app.desktop.models import load_model
    from app.engine.engine import SearchEngine
    from app.runtime_preload import runtime_needs_torch

    if runtime_needs_torch(Path(model)):  # PyTorch and ExecuTorch's Python runtime run on torch; ONNX does not
        importlib.import_module("torch")

    stamps["imports"] = time.time()
    encoders = load_model(model, threads=threads)
    stamps["model_load"] = time.time()
    engine = SearchEngine(data_dir, encoders, readonly=True)
    stamps["store_open"] = time.time()
    first = engine.search_text(queries[0], K)
    stamps["first_query"] = time.time()
    torch = sys.modules.get("torch")
    out: dict[str, Any] = {
        "stamps": stamps,
        "first_results": len(first),
        "backend": encoders.backend,
        "torch_threads": torch.get_num_threads() if torch else None,
    }
    if warm:
        tok = encoders.tokenizer.encode_query
        tokens = [tok(q) for q in queries]
        vectors = [encoders.encode_tokens(t)[0] for t in tokens]
        budget = {"budget_s": 1.0, "max_repeats": 300}
        out["warm"] = {
            "tokenize": time_calls(tok, queries, **budget),
            "encode_text": time_calls(encoders.encode_tokens, tokens, **budget),
            "search_vector": time_calls(lambda v: engine.search_vector(v, K), vectors, **budget),
            "search_text": time_calls(lambda q: engine.search_text(q, K), queries, **budget),
        }
        from app.engine import search

        def cpu_ms_per_query(n: int = 200) -> float:
            """CPU time of the whole process (every thread) per warm query: what a query costs, which a
            shared machine's wall clock hides (a 2 ms task on 30% of a core takes ~6 ms)."""
            t0 = time.process_time()
            for i in range(n):
                engine.search_text(queries[i % len(queries)], K)
            return 1e3 * (time.process_time() - t0) / n

        out["warm"]["search_text_cpu_ms"] = cpu_ms_per_query()
        small, search.SMALL_PRODUCT = search.SMALL_PRODUCT, 0  # the product before issue 17: always BLAS's pool
        try:
            out["warm"]["search_vector_blas_pool"] = time_calls(lambda v: engine.search_vector(v, K), vectors, **budget)
            out["warm"]["search_text_blas_pool"] = time_calls(lambda q: engine.search_text(q, K), queries, **budget)
            out["warm"]["search_text_blas_pool_cpu_ms"] = cpu_ms_per_query()
        finally:
            search.SMALL_PRODUCT = small
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):  # numpy's BLAS pool next to torch's: see the findings
            out["warm"]["search_text_blas_1"] = time_calls(
                lambda q: engine.search_text(q, K), queries, **budget
            )
    from bench.common import current_rss_mb, peak_rss_mb

    out["rss_mb"] = {"search_process": current_rss_mb(), "peak": peak_rss_mb()}  # after the queries
    out["modules"] = {name: name in sys.modules for name in ("torch", "executorch", "onnxruntime")}
    engine.close()
    return out


def comparison_models(model: Path) -> list[Path]:
    """``model`` first, then the other forms of the same run found beside it: ``<root>/runs/<name>`` and
    every bundle ``<root>/bundles/<name>-*`` (e.g. bundles/offline-onnx, bundles/offline-executorch)."""
    model = Path(model).resolve()
    if model.parent.name == "runs":
        root, name = model.parent.parent, model.name
    elif model.parent.name == "bundles":
        root = model.parent.parent
        manifest = json.loads((model / "manifest.json").read_text())
        name = Path((manifest.get("source") or {}).get("checkpoint") or model.name).name
    else:
        return [model]
    others = [root / "runs" / name, *sorted((root / "bundles").glob(f"{name}-*"))]
    found = []
    for other in others:
        try:
            read_model_info(other)
        except (ValueError, OSError):
            continue
        if other.resolve() != model:
            found.append(other.resolve())
    return [model, *found]


def run(quick: bool, work_dir: Path, model: Path, threads: int | None = None) -> dict[str, Any]:
    """The cold start and warm queries of ``model``, and, side by side in the same run, of the other
    forms of its run found beside it (``comparison_models``) under ``compared``."""
    models = comparison_models(model)
    results = [measure_model(quick, work_dir / f"model-{i}", m, threads) for i, m in enumerate(models)]
    return {**results[0], "compared": results[1:]}


def measure_model(quick: bool, work_dir: Path, model: Path, threads: int | None = None) -> dict[str, Any]:
    info = read_model_info(model)
    logger.info("startup: writing an index of %d photos for %s", STORE_PHOTOS, display_path(model))
    index = build_index(work_dir, model)
    threads = threads or 1  # what `python -m app.engine search` uses: one query is fastest on one thread
    runs = []
    for i in range(COLD_STARTS[quick]):
        logger.info("startup: cold start %d of %d (%s)", i + 1, COLD_STARTS[quick], index["backend"])
        child = run_child(
            "bench.startup:cold_start_in_child",
            {
                "model": str(Path(model).resolve()),
                "data_dir": index["data_dir"],
                "threads": threads,
                "queries": QUERIES,
                "warm": i == COLD_STARTS[quick] - 1,
            },
        )
        st = child.result["stamps"]
        seconds = {"interpreter": st["started"] - child.launched, "harness": st["harness"] - st["started"]}
        previous = st["harness"]
        for key, _ in STAGES[1:]:
            seconds[key] = st[key] - previous
            previous = st[key]
        seconds["total"] = st["first_query"] - child.launched - seconds["harness"]
        runs.append({"seconds": seconds, "first_results": child.result["first_results"]})
        if "warm" in child.result:
            last = child.result
            warm, backend, torch_threads = last["warm"], last["backend"], last["torch_threads"]
    median = {k: statistics.median(r["seconds"][k] for r in runs) for k in runs[0]["seconds"]}
    return {
        "model": display_path(model),
        "model_kind": info.kind,
        "backend": backend,
        "precision": info.precision,
        "threads": torch_threads,
        "index": index,
        "cold_starts": runs,
        "cold_median_s": median,
        "warm": warm,
        "rss_mb": last["rss_mb"],
        "modules": last["modules"],
        "k": K,
        "queries": len(QUERIES),
    }


def to_markdown(result: dict[str, Any]) -> str:
    med, warm, idx = result["cold_median_s"], result["warm"], result["index"]
    if result["model_kind"] == "run":
        runtime = f"PyTorch run directory `{result['model']}`, {result['threads']} torch thread(s)"
    else:
        runtime = f"{result['backend']} {result['precision']} bundle `{result['model']}`, runtime's threads"
    rows = [
        [label, f"{1e3 * med[key]:.0f}", f"{100 * med[key] / med['total']:.0f}%"] for key, label in STAGES
    ]
    rows.append(["**total, launch to first result**", f"**{1e3 * med['total']:.0f}**", "100%"])
    cold = md_table(["stage", "ms (median)", "share"], rows)
    steps = (
        ("tokenize", "tokenize the query"),
        ("encode_text", "text encoder"),
        ("search_vector", f"search: top-{result['k']} of {idx['photos']:,} + paths + file check"),
        ("search_text", "**end to end (search_text)**"),
        ("search_text_blas_1", "end to end, numpy's BLAS limited to 1 thread"),
        ("search_vector_blas_pool", "search as before issue 17 (every product on BLAS's pool)"),
        ("search_text_blas_pool", "end to end as before issue 17 (every product on BLAS's pool)"),
    )
    steps = tuple((k, label) for k, label in steps if k in warm)
    warm_table = md_table(
        ["step", "p50 ms", "p90 ms"],
        [[label, f"{warm[k]['p50_ms']:.2f}", f"{warm[k]['p90_ms']:.2f}"] for k, label in steps],
    )
    parts = sum(warm[k]["p50_ms"] for k in ("tokenize", "encode_text", "search_vector"))
    heaviest = max((k for k, _ in STAGES), key=lambda k: med[k])
    findings = [
        (
            f"- From launch to the first result takes {med['total']:.2f} s (median of "
            f"{len(result['cold_starts'])} "
            f"fresh processes); the largest part is {dict(STAGES)[heaviest].split(':')[0].split(' (')[0]} "
            f"({100 * med[heaviest] / med['total']:.0f}%)."
        ),
        (
            f"- Warm, a query takes {warm['search_text']['p50_ms']:.2f} ms end to end at {idx['photos']:,} "
            "photos: "
            f"{100 * warm['encode_text']['p50_ms'] / warm['search_text']['p50_ms']:.0f}% text encoder, "
            f"{100 * warm['search_vector']['p50_ms'] / warm['search_text']['p50_ms']:.0f}% search when each "
            "step is "
            f"timed alone; the steps sum to {parts:.2f} ms."
        ),
    ]
    one, default = warm["search_text_blas_1"]["p50_ms"], warm["search_text"]["p50_ms"]
    if "search_text_blas_pool" in warm:
        old = warm["search_text_blas_pool"]["p50_ms"]
        findings.append(
            f"- Side by side in this process: {default:.2f} ms end to end now (a {idx['photos']:,}-row product on "
            f"the calling thread) against {old:.2f} ms with every product on BLAS's thread pool, as before "
            f"({old / default:.1f}x)."
        )
    if "search_text_cpu_ms" in warm:
        findings.append(
            f"- CPU time per warm query (every thread of the process, 200 queries): "
            f"{warm['search_text_cpu_ms']:.2f} ms now, {warm['search_text_blas_pool_cpu_ms']:.2f} ms with every "
            "product on BLAS's pool. On a shared machine the wall clock of a query is its CPU time divided by the "
            "share of a core it gets; the CPU time is what an idle machine would take."
        )
    if default > 1.3 * one:
        findings.append(
            f"- With numpy's BLAS pool limited to one thread, a query takes {one:.2f} ms instead of "
            f"{default:.2f} ms ({default / one:.1f}x faster); the engine runs its search on the BLAS "
            "library's default threads."
        )
    else:
        findings.append(
            f"- Limiting numpy's BLAS pool to one thread changes little here: {one:.2f} ms instead "
            f"of {default:.2f} ms."
        )
    text = (
        f"### Cold start to the first result, {idx['photos']:,} photos indexed: {runtime}\n\n{cold}\n\n"
        f"### Warm query latency at {idx['photos']:,} photos ({len(QUERIES)} different queries)\n\n"
        f"{warm_table}\n\nFindings (this run):\n\n" + "\n".join(findings)
    )
    if result.get("compared"):
        text += "\n\n" + side_by_side(result)
    return text


def _label(r: dict[str, Any]) -> str:
    return f"`{Path(r['model']).name}` ({r['backend']}{'' if r['model_kind'] == 'run' else ' ' + r['precision']})"


def side_by_side(result: dict[str, Any]) -> str:
    """One column per form of the model, all measured in this run: cold start, memory, warm query."""
    models = [result, *result["compared"]]
    rows = [[label.split(":")[0].split(" (")[0]] + [f"{1e3 * m['cold_median_s'][key]:.0f}" for m in models]
            for key, label in STAGES]
    rows.append(["**launch to first result, ms**"] + [f"**{1e3 * m['cold_median_s']['total']:.0f}**" for m in models])
    rows.append(["resident memory of the search process, MB (peak)"] + [
        f"{m['rss_mb']['search_process']:.0f} ({m['rss_mb']['peak']:.0f})" if m.get("rss_mb") else "-" for m in models])
    rows.append(["torch imported"] + [("yes" if m["modules"]["torch"] else "no") if m.get("modules") else "-"
                                      for m in models])
    for key, label in (("encode_text", "warm text encoder, p50 ms"), ("search_text", "**warm query end to end, p50 ms**")):
        rows.append([label] + [f"{m['warm'][key]['p50_ms']:.2f}" for m in models])
    fastest = min(models, key=lambda m: m["cold_median_s"]["total"])
    return (
        f"### The same model in every form found beside it, side by side (cold-start medians, "
        f"{result['index']['photos']:,} photos)\n\n"
        + md_table(["", *(_label(m) for m in models)], rows)
        + f"\n\n- Fastest to the first result: {_label(fastest)}, {fastest['cold_median_s']['total']:.2f} s."
    )


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """One stacked bar per form of the model (the --model first), stages from process launch."""
    models = [result, *result.get("compared", [])]
    fig, ax = new_figure(1, 7.0, 1.6 + 0.5 * len(models))
    colours = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red")
    for row, m in enumerate(models):
        left = 0.0
        for (key, label), colour in zip(STAGES, colours):
            ax.barh([row], [m["cold_median_s"][key]], left=left, color=colour,
                    label=label.split(":")[0].split(" (")[0] if row == 0 else None)
            left += m["cold_median_s"][key]
        ax.text(left, row, f" {m['cold_median_s']['total']:.2f} s (median total)", va="center", fontsize=8)
    ax.set_yticks(range(len(models)), [_label(m).replace("`", "") for m in models], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from process launch")
    ax.set_title("Cold start to the first result")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return [save_figure(fig, out_dir / "startup_cold.png")]
