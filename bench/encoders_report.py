"""The encoders section's report: markdown tables, findings and plots from its result."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    md_table,
    new_figure,
    other_cpu_sentence,
    save_figure,
)
from bench.encoder_specs import RUNTIME_LABELS, RUNTIMES, TYPICAL_QUERY

# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def _rate(ms: Sequence[dict], key: str, runtime: str, batch: int, length: int | None) -> float | None:
    for m in ms:
        if (m["encoder"], m["runtime"], m["batch"], m["length"]) == (key, runtime, batch, length):
            return m["items_per_s"]
    return None


def _ratio_cell(ratios: Sequence[dict], key: str, runtime: str, batch: int, length: int | None) -> str:
    """The student/teacher ratio of ``speed_ratios`` for one setting, as "1.23x" ("-" if not measured)."""
    for r in ratios:
        if (r["student"], r["runtime"], r["batch"], r["length"]) == (key, runtime, batch, length):
            return f"{r['ratio']:.2f}x"
    return "-"


def _settings_present(measurements: Sequence[dict], kind_keys: set[str]) -> list[tuple[str, int]]:
    """(runtime, batch) pairs measured for these encoders, in RUNTIMES order, batch 1 first."""
    present = {(m["runtime"], m["batch"]) for m in measurements if m["encoder"] in kind_keys}
    return sorted(present, key=lambda p: (RUNTIMES.index(p[0]), p[1]))


def _length_gain(measurements: Sequence[dict], key: str, runtime: str, short: int, full: int) -> float | None:
    """texts/s at ``short`` tokens over texts/s at ``full`` tokens, batch 1 (None if either is missing)."""
    fast, slow = _rate(measurements, key, runtime, 1, short), _rate(measurements, key, runtime, 1, full)
    return fast / slow if fast and slow else None


def _typical_length(lengths: Sequence[int]) -> int:
    return TYPICAL_QUERY if TYPICAL_QUERY in lengths else lengths[0]


def _size_table(encoders: dict[str, dict]) -> str:
    rows = []
    for e in encoders.values():
        if "error" in e:
            rows.append([e["label"], e["role"], "-", "-", "-", "-", "-", f"error: {e['error']}"])
            continue
        arch = e["architecture"]
        if "tokens" in arch:
            shape = f"{arch['tokens']} tokens x width {arch['width']} x {arch['depth']} blocks"
        elif e["kind"] == "text":
            shape = f"width {arch['width']} x {arch['depth']} blocks"
        else:
            shape = arch["family"]
        d = e["disk"]
        gflops = e["gflops"]["per_item"]
        rows.append([e["label"], e["role"], f"{e['params'] / 1e6:.1f}", _fmt(gflops), _fmt(d["fp32_mb"]),
                     _fmt(d["fp16_mb"]), _fmt(d["int8_mb"]), shape])
    head = ["encoder", "role", "params (M)", "GFLOPs/item", "fp32 MB", "fp16 MB", "int8 MB", "shape"]
    return md_table(head, rows)


def _image_tables(result: dict) -> tuple[str, str]:
    enc, ms = result["encoders"], result["measurements"]
    keys = [k for k, e in enc.items() if e["kind"] == "image" and "error" not in e]
    cols = _settings_present(ms, set(keys))
    head = [f"{RUNTIME_LABELS[r]} b{b}" for r, b in cols]
    rows = [[enc[k]["label"], *(_fmt(_rate(ms, k, r, b, None)) for r, b in cols)] for k in keys]
    speed = md_table(["encoder", *head], rows)
    teacher = next(k for k in keys if enc[k]["role"] == "teacher")
    ratio_rows = []
    for k in keys:
        if k == teacher:
            continue
        flops = enc[teacher]["gflops"]["per_item"] / enc[k]["gflops"]["per_item"]
        ratio_rows.append([enc[k]["label"], f"{flops:.2f}x",
                           *(_ratio_cell(result["ratios"], k, r, b, None) for r, b in cols)])
    ratios = md_table(["student", "FLOPs ratio (teacher/student)", *head], ratio_rows)
    return speed, ratios


def _text_tables(result: dict) -> tuple[str, str]:
    enc, ms = result["encoders"], result["measurements"]
    keys = [k for k, e in enc.items() if e["kind"] == "text" and "error" not in e]
    teacher = next(k for k in keys if enc[k]["role"] == "teacher")
    lengths = result["settings"]["text_lengths"]
    head = [f"{n} tokens" for n in lengths]
    speed_rows, ratio_rows = [], []
    for r, b in _settings_present(ms, set(keys)):
        for k in keys:
            rates = [_rate(ms, k, r, b, n) for n in lengths]
            if all(x is None for x in rates):
                continue
            speed_rows.append([enc[k]["label"], RUNTIME_LABELS[r], b, *map(_fmt, rates)])
            if k != teacher:
                ratio_rows.append([enc[k]["label"], RUNTIME_LABELS[r], b,
                                   *(_ratio_cell(result["ratios"], k, r, b, n) for n in lengths)])
    return (md_table(["encoder", "runtime", "batch", *head], speed_rows),
            md_table(["student", "runtime", "batch", *head], ratio_rows))


def _invariance_table(result: dict) -> str:
    enc, ms = result["encoders"], result["measurements"]
    lengths = result["settings"]["text_lengths"]
    short, full = _typical_length(lengths), lengths[-1]
    rows = []
    for inv in result["length_invariance"]:
        k, r = inv["encoder"], inv["runtime"]
        gain = _length_gain(ms, k, r, short, full)
        rows.append([enc[k]["label"], RUNTIME_LABELS[r], inv["sequences"], f"{inv['max_abs_diff']:.1e}",
                     f"{inv['min_cos']:.6f}", "yes" if inv["matches"] else "**no**",
                     f"{gain:.1f}x" if gain else "-"])
    return md_table(["encoder", "runtime", "sequences", "max abs diff", "min cosine", "same embedding",
                     f"{short} vs {full} tokens, texts/s"], rows)


def _program_table(result: dict) -> str:
    rows = []
    for name, p in result["programs"].items():
        if "error" in p:
            rows.append([name, "-", "-", "-", "-", f"error: {p['error']}"])
            continue
        agree = p.get("vs_eager", {})
        rows.append([name, _fmt(p["mb"]), f"{p['export_s']:.0f}", p["xnnpack_delegates"],
                     f"{agree.get('min_cos', float('nan')):.5f}", len(p["portable_operators"])])
    return md_table(["program", "MB", "export s", "XNNPACK delegate calls", "min cosine vs eager",
                     "portable operators"], rows)


def _setting_name(r: dict) -> str:
    where = f"{RUNTIME_LABELS[r['runtime']]} batch {r['batch']}"
    return where + (f" at {r['length']} tokens" if r["length"] else "")


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if abs(hi - lo) < 0.005 else f"{lo:.2f}x to {hi:.2f}x"


def findings(result: dict) -> list[str]:
    """Plain sentences computed from the numbers: where the paper's speed-ups hold on this CPU."""
    enc, lines = result["encoders"], []
    by_student: dict[str, list[dict]] = {}
    for r in result["ratios"]:
        by_student.setdefault(r["student"], []).append(r)
    for key, rs in by_student.items():
        e, claim = enc[key], rs[0]["paper"]
        where = {}
        for r in rs:
            where.setdefault(RUNTIME_LABELS[r["runtime"]], []).append(r["ratio"])
        per_runtime = "; ".join(f"{name} {_span(v)}" for name, v in where.items())
        reached = [r for r in rs if r["reaches_paper"]]
        if len(reached) == len(rs):
            verdict = f"reaches the paper's {claim}x in every setting measured"
        elif not reached:
            verdict = f"reaches the paper's {claim}x nowhere"
        else:
            verdict = f"reaches the paper's {claim}x in {len(reached)} of {len(rs)} settings"
        slower = [r for r in rs if not r["faster"]]
        if len(slower) > 3:
            tail = f"; it is slower than the teacher in {len(slower)} of {len(rs)} settings"
        elif slower:
            tail = "; it is slower than the teacher in " + ", ".join(map(_setting_name, slower))
        else:
            tail = ""
        lines.append(f"{e['label']} vs the teacher: {per_runtime}. It {verdict}{tail}.")
    teacher_img = next((e for e in enc.values() if e["role"] == "teacher" and e["kind"] == "image"), None)
    student_img = next((e for e in enc.values()
                        if e["role"] == "student" and e["kind"] == "image" and "error" not in e), None)
    if teacher_img and student_img:
        t, s = teacher_img, student_img
        ta, sa = t["architecture"], s["architecture"]
        shapes = (f"runs {sa['tokens']} tokens of width {sa['width']}, the teacher {ta['tokens']} of width "
                  f"{ta['width']}: " if "tokens" in ta and "tokens" in sa else "needs ")
        sf, tf = s["gflops"]["per_item"], t["gflops"]["per_item"]
        lines.append(f"Why: {s['label']} {shapes}{_fmt(sf)} vs {_fmt(tf)} GFLOPs per image, "
                     f"{sf / tf:.2f}x the teacher's work with {s['params'] / t['params']:.2f}x its "
                     "parameters.")
    teacher_txt = next((k for k, e in enc.items() if e["role"] == "teacher" and e["kind"] == "text"), None)
    students_txt = [e for e in enc.values()
                    if e["kind"] == "text" and e["role"] != "teacher" and "error" not in e]
    if teacher_txt and students_txt:
        t = enc[teacher_txt]
        lines.append("At the full context the teacher's text tower does " + ", ".join(
            f"{t['gflops']['per_item'] / e['gflops']['per_item']:.2f}x the FLOPs of the {e['label']}"
            for e in students_txt) + ": the blocks kept set the ideal speed-up (the token lookup is free).")
    best, compared = {}, {}
    for r in result["ratios"]:
        if r["kind"] == "image" and r["batch"] == 1:
            compared[r["runtime"]] = compared.get(r["runtime"], 0) + 1
            if r["ratio"] > best.get(r["runtime"], {"ratio": 0.0})["ratio"]:
                best[r["runtime"]] = r
    best = {rt: r for rt, r in best.items() if compared[rt] > 1}  # a choice needs two students at least
    if best:
        lines.append("The fastest image student at batch 1: " + "; ".join(
            f"{RUNTIME_LABELS[rt]} {enc[r['student']]['label']} ({r['ratio']:.2f}x the teacher)"
            for rt, r in sorted(best.items(), key=lambda kv: RUNTIMES.index(kv[0]))) + ".")
    lengths = result["settings"]["text_lengths"]
    short, full = _typical_length(lengths), lengths[-1]
    gains = [r for r in (_length_gain(result["measurements"], k, rt, short, full)
                         for k in enc for rt in RUNTIMES) if r is not None]
    if gains:
        lines.append(f"Encoding a query of {short} tokens at its actual length instead of padding it to "
                     f"{full} makes a text encoder {min(gains):.1f}x to {max(gains):.1f}x faster at batch 1.")
    bad = [i for i in result["length_invariance"] if not i["matches"]]
    worst = max((i["max_abs_diff"] for i in result["length_invariance"]), default=0.0)
    if result["length_invariance"] and not bad:
        lines.append(f"Encoding a query at its actual length gives the same embedding as padding it to the "
                     f"full context for every text encoder and runtime (max |diff| {worst:.1e}, "
                     f"min cosine {min(i['min_cos'] for i in result['length_invariance']):.6f}).")
    for i in bad:
        lines.append(f"{enc[i['encoder']]['label']} in {RUNTIME_LABELS[i['runtime']]} does NOT give the same "
                     f"embedding at actual length as padded (max |diff| {i['max_abs_diff']:.1e}).")
    return lines


def to_markdown(result: dict) -> str:
    """The section as Markdown: tables and the findings computed from them."""
    th = result["threads"]
    image_speed, image_ratios = _image_tables(result)
    text_speed, text_ratios = _text_tables(result)
    parts = [
        "### Encoders at real size",
        f"Weights: {result['weights']}; torch {th['torch']} threads, ExecuTorch/XNNPACK threadpool "
        f"{th['xnnpack_threadpool']} threads. fp32 and int8 sizes are the ExecuTorch .pte files where "
        "exported, fp16 the parameter bytes. int8: " + result["int8_calibration"] + ". "
        + other_cpu_sentence(result.get("other_cpu_during_timing")),
        _size_table(result["encoders"]),
        "### Image encoders: images/s",
        image_speed,
        "### Image students: speed relative to the teacher",
        f"Student images/s divided by the teacher's; the paper claims {result['paper_speedup']['image']}x.",
        image_ratios,
        "### Text encoders: texts/s by query length",
        text_speed,
        "### Text students: speed relative to the teacher",
        f"The paper claims {result['paper_speedup']['text']}x.",
        text_ratios,
        "### Text at actual length vs padded to the full context",
        _invariance_table(result),
        "### ExecuTorch programs",
        _program_table(result),
        "### Findings",
        "\n".join(f"- {line}" for line in findings(result)),
    ]
    notes = result["notes"] + [f"Skipped in this run: {x}." for x in result["skipped"]]
    parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def _plain_log_scale(ax, which: str) -> None:
    """Log scale on axis ``which`` ("x" or "y"), plain-number ticks (10, 20, 50), minor ones unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot(result: dict, out_dir: Path) -> list[Path]:
    """encoders_images.png (images/s per encoder and runtime), encoders_texts.png (texts/s by length),
    encoders_ratios.png (student/teacher speed at batch 1 against the paper's claims)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc, ms = result["encoders"], result["measurements"]
    paths = []

    keys = [k for k, e in enc.items() if e["kind"] == "image" and "error" not in e]
    cols = _settings_present(ms, set(keys))
    fig, ax = new_figure(width=max(6.0, 1.2 * len(keys)))

    width = 0.8 / max(1, len(cols))
    for i, (r, b) in enumerate(cols):
        values = [_rate(ms, k, r, b, None) or 0.0 for k in keys]
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, values, width, label=f"{RUNTIME_LABELS[r]}, batch {b}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], [enc[k]["label"] for k in keys],
                  rotation=30, ha="right")
    _plain_log_scale(ax, "y")
    ax.set_ylabel("images/s")
    ax.set_title("Image encoders (random weights, real size)")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "encoders_images.png"))

    keys = [k for k, e in enc.items() if e["kind"] == "text" and "error" not in e]
    lengths = result["settings"]["text_lengths"]
    fig, ax = new_figure()

    for r, b in _settings_present(ms, set(keys)):
        if b != 1:
            continue
        for k in keys:
            values = [_rate(ms, k, r, b, n) for n in lengths]
            if any(v is not None for v in values):
                ax.plot(lengths, [v or float("nan") for v in values], marker="o",
                        linestyle="-" if r == "eager" else "--",
                        label=f"{enc[k]['label']}, {RUNTIME_LABELS[r]}")
    _plain_log_scale(ax, "x")
    _plain_log_scale(ax, "y")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("tokens in the query (77 = full context)")
    ax.set_ylabel("texts/s at batch 1")
    ax.set_title("Text encoders: speed by query length")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    paths.append(save_figure(fig, out_dir / "encoders_texts.png"))

    rs = [r for r in result["ratios"] if r["batch"] == 1 and r["length"] in (None, _typical_length(lengths))]
    fig, ax = new_figure(width=7.0, height=max(4.0, 0.28 * len(rs)))  # one readable line per bar

    labels = [f"{enc[r['student']]['label']}, {RUNTIME_LABELS[r['runtime']]}"
              + (f", {r['length']} tokens" if r["length"] else "") for r in rs]
    colour = {"image": "tab:blue", "text": "tab:green"}
    ax.barh(range(len(rs)), [r["ratio"] for r in rs], color=[colour[r["kind"]] for r in rs])
    for kind, claim in result["paper_speedup"].items():
        ax.axvline(claim, linestyle="--", color=colour[kind], label=f"paper, {kind}: {claim}x")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("student speed / teacher speed (batch 1)")
    ax.set_title("Student/teacher speed ratio")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "encoders_ratios.png"))
    return paths
