"""bench.search's results as Markdown tables, findings and plots (reads the section's JSON; measures nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.common import fmt_ms, md_table, new_figure, save_figure
from bench.search_limits import scan_limit_ms


def _size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def _rows_for(result: dict[str, Any], dim: int) -> dict[str, dict[int, dict[str, Any]]]:
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for r in result["rows"]:
        if r["dim"] == dim:
            table.setdefault(r["key"], {})[r["n"]] = r
    return table


def _label(by_n: dict[int, dict[str, Any]], field: str = "method") -> Any:
    return next(iter(by_n.values()))[field]


def to_markdown(result: dict[str, Any]) -> str:
    sizes, bw = result["sizes"], result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    parts = []
    for dim in result["dims"]:
        table = _rows_for(result, dim)
        head = ["method"] + [f"{_size_label(n)}" for n in sizes] + ["bytes/photo"]
        rows = [
            [_label(by_n)]
            + [fmt_ms(by_n[n]["p50_ms"]) if n in by_n else "-" for n in sizes]
            + [f"{_label(by_n, 'bytes_per_photo'):.0f}"]
            for by_n in table.values()
        ]
        for label, per_row in (("fp32", 4 * dim), ("int8", dim + 4)):
            rows.append(
                [f"*read limit, {label} rows at {gbps:.1f} GB/s*"]
                + [fmt_ms(scan_limit_ms(n * per_row, gbps)) for n in sizes]
                + [""]
            )
        ivf = [a for a in result["approximate"] if a["dim"] == dim]
        for nprobe in result["nprobes"]:
            by_n = {a["n"]: a["by_nprobe"][str(nprobe)] for a in ivf}
            rows.append(
                [f"FAISS IVF-Flat, nprobe {nprobe}, 1 thread (approximate)"]
                + [fmt_ms(by_n[n]["p50_ms"]) if n in by_n else "-" for n in sizes]
                + [f"{4 * dim + 8}"]
            )
        note = " (the model's)" if dim == result.get("model_dim") else " (CLIP ViT-B/32's)"
        parts.append(
            f"### Search latency, {dim}-d embeddings{note}: p50 ms per top-{result['k']} query over N "
            f"stored photos\n\n" + md_table(head, rows)
        )
        rec_rows = [
            [_label(by_n)]
            + [
                f"{by_n[n]['recall_clustered']:.3f} / {by_n[n]['recall_uniform']:.3f}" if n in by_n else "-"
                for n in sizes
            ]
            for by_n in table.values()
        ]
        for nprobe in result["nprobes"]:
            by_n = {a["n"]: a["by_nprobe"][str(nprobe)] for a in ivf}
            rec_rows.append(
                [f"FAISS IVF-Flat, nprobe {nprobe}"]
                + [
                    f"{by_n[n]['recall_clustered']:.3f} / {by_n[n]['recall_uniform']:.3f}"
                    if n in by_n
                    else "-"
                    for n in sizes
                ]
            )
        parts.append(
            f"### Recall@{result['k']} against the engine's exact fp32 answers, {dim}-d "
            f"(clustered / uniform vectors)\n\n"
            + md_table(["method"] + [_size_label(n) for n in sizes], rec_rows)
        )
    if result["approximate"]:
        parts.append(
            "### FAISS IVF-Flat build time (k-means training + adding every row, 1 thread)\n\n"
            + md_table(
                ["N x D", "lists", "build s (clustered)", "build s (uniform)"],
                [
                    [
                        f"{_size_label(a['n'])} x {a['dim']}",
                        a["nlist"],
                        f"{a['build_s_clustered']:.2f}",
                        f"{a['build_s_uniform']:.2f}",
                    ]
                    for a in result["approximate"]
                ],
            )
        )
    llc = result.get("last_level_cache_bytes")
    if llc:
        parts.append(
            f"Read limits assume the rows stream from RAM; sizes whose rows fit in the {llc / 2**20:.0f} MiB "
            "last-level cache can beat them."
        )
    parts.append(_memory_markdown(result))
    parts.append(_findings(result))
    return "\n\n".join(parts)


def _memory_markdown(result: dict[str, Any]) -> str:
    st = result["store"]
    sql = st["sqlite_bytes_per_photo"]
    rows = []
    for dim in result["dims"]:
        for label, emb in (
            ("fp32 (the engine's store)", 4 * dim),
            ("fp16", 2 * dim),
            ("int8 + fp32 scale", dim + 4),
        ):
            per = emb + sql
            rows.append(
                [
                    f"{dim}-d {label}",
                    f"{emb:.0f}",
                    f"{sql:.0f}",
                    f"{per:.0f}",
                    f"{per * 1e5 / 1e6:.1f}",
                    f"{per * 1e6 / 1e6:.0f}",
                ]
            )
    return (
        f"### Memory per stored photo (SQLite row measured on a real store of {st['photos']:,} photos, "
        f"{st['path_chars']}-character paths)\n\n"
        + md_table(
            ["embedding", "embedding B", "SQLite B", "total B", "100k photos MB", "1M photos MB"], rows
        )
    )


def _bound_word(ms: float, limit_ms: float) -> str:
    """How a search time compares with the time to stream its rows at the measured bandwidth."""
    if ms < 0.9 * limit_ms:
        return "faster than the bandwidth measured, which therefore underestimates this machine's"
    if ms <= 1.25 * limit_ms:
        return "memory-bound, at the machine's read bandwidth within measurement noise"
    return "slower than streaming the rows: compute, not memory, sets its speed"


def _findings(result: dict[str, Any]) -> str:
    bw = result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    n, dim = max(result["sizes"]), max(result["dims"])
    table = _rows_for(result, dim)
    engine, engine_1t, fp16, int8, flat1, flatn, sq16, sq8 = (
        table[key][n]
        for key in (
            "numpy_fp32",
            "numpy_fp32_1t",
            "numpy_fp16",
            "numpy_int8",
            "faiss_flat_1t",
            "faiss_flat_default",
            "faiss_sq_fp16",
            "faiss_sq_8bit",
        )
    )
    lines = [
        (
            f"- Read bandwidth {bw['gbps_1_thread']:.1f} GB/s on one thread, {bw['gbps_all_threads']:.1f} "
            f"GB/s on {bw['threads']} (the fastest read-only kernel): streaming {n:,} x {dim} fp32 rows "
            f"({engine['scanned_bytes'] / 1e6:.0f} MB) at that rate takes "
            f"{scan_limit_ms(engine['scanned_bytes'], gbps):.1f} ms. The engine's numpy search takes "
            f"{engine['p50_ms']:.1f} ms, reading {engine['scanned_bytes'] / engine['p50_ms'] / 1e6:.1f} GB/s "
            f"({scan_limit_ms(engine['scanned_bytes'], gbps) / engine['p50_ms']:.2f}x the measured bandwidth: "
            f"{_bound_word(engine['p50_ms'], scan_limit_ms(engine['scanned_bytes'], gbps))}), "
            f"{engine_1t['p50_ms']:.1f} ms on one BLAS thread."
        ),
        (
            f"- FAISS IndexFlatIP at {n:,} x {dim}: {flat1['p50_ms']:.1f} ms on 1 thread "
            f"({engine['p50_ms'] / flat1['p50_ms']:.2f}x the engine's speed), {flatn['p50_ms']:.1f} ms on "
            f"{flatn['faiss_threads']} threads; it keeps its own copy of every embedding."
        ),
        (
            f"- Quantised rows: fp16 halves and int8 quarters the bytes per photo. numpy has no fast half or "
            f"int8 product, so its blocked upcast takes {fp16['p50_ms']:.1f} / {int8['p50_ms']:.1f} ms; "
            "FAISS's "
            f"SIMD scalar quantizer {sq16['p50_ms']:.1f} / {sq8['p50_ms']:.1f} ms. Recall@10 vs exact: fp16 "
            f"{fp16['recall_clustered']:.3f}, int8 per-row {int8['recall_clustered']:.3f} (uniform vectors "
            f"{int8['recall_uniform']:.3f}), FAISS 8-bit {sq8['recall_clustered']:.3f}."
        ),
    ]
    approx = [a for a in result["approximate"] if a["n"] == n and a["dim"] == dim]
    if approx:
        a = approx[0]
        lo, hi = (a["by_nprobe"][str(p)] for p in result["nprobes"][:2])
        lines.append(
            f"- Approximate IVF-Flat ({a['nlist']} lists) at {n:,} x {dim}: nprobe {result['nprobes'][0]} "
            f"{lo['p50_ms']:.2f} ms at recall {lo['recall_clustered']:.3f}, nprobe {result['nprobes'][1]} "
            f"{hi['p50_ms']:.2f} ms at recall {hi['recall_clustered']:.3f} on clustered vectors; on uniform "
            f"random vectors (the hard case) recall falls to {lo['recall_uniform']:.3f} / "
            f"{hi['recall_uniform']:.3f}. Building it took {a['build_s_clustered']:.1f} s."
        )
    st = result["store"]
    lines.append(
        f"- The SQLite row (path, size, mtime, fingerprint, state, indexes) costs "
        f"{st['sqlite_bytes_per_photo']:.0f} bytes per photo, next to {4 * dim} bytes of a {dim}-d "
        f"fp32 embedding."
    )
    return "Findings (this run):\n\n" + "\n".join(lines)


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    dims = result["dims"]
    fig, axes = new_figure(len(dims), 6.0, 4.5)
    axes = np.atleast_1d(axes)
    bw = result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    for ax, dim in zip(axes, dims):
        for by_n in _rows_for(result, dim).values():
            ns = sorted(by_n)
            ax.plot(
                ns,
                [by_n[n]["p50_ms"] for n in ns],
                marker="o",
                label=_label(by_n).split(" (")[0],
                linewidth=1.2,
            )
        ivf = sorted((a for a in result["approximate"] if a["dim"] == dim), key=lambda a: a["n"])
        for nprobe in result["nprobes"][-1:]:
            if ivf:
                ax.plot(
                    [a["n"] for a in ivf],
                    [a["by_nprobe"][str(nprobe)]["p50_ms"] for a in ivf],
                    marker="s",
                    linestyle=":",
                    label=f"FAISS IVF-Flat nprobe {nprobe} (approx.)",
                )
        ns = np.asarray(result["sizes"], dtype=float)
        ax.plot(ns, [scan_limit_ms(n * 4 * dim, gbps) for n in ns], "k--", label="read limit, fp32 rows")
        ax.plot(ns, [scan_limit_ms(n * (dim + 4), gbps) for n in ns], "k:", label="read limit, int8 rows")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stored photos")
        ax.set_ylabel(f"p50 latency of a top-{result['k']} query (ms)")
        ax.set_title(f"{dim}-d embeddings")
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return [save_figure(fig, out_dir / "search_latency.png")]
