"""bench.indexing's results as Markdown tables and plots (reads the section's JSON; measures nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import (
    fmt_ms,
    md_table,
    new_figure,
    save_figure,
)
from bench.gallery import REAL_MODEL_SIZE

_STAGE_LABELS = {
    "read": "read the file",
    "fingerprint": "content fingerprint",
    "decode": "JPEG decode (draft, for the model's input size)",
    "preprocess": "resize + crop + normalise",
    "encode": "image encoder (per photo of a batch)",
    "store_commit": "store commit (fsync + transaction, per photo of a batch)",
}


def to_markdown(result: dict[str, Any]) -> str:
    e2e, stages, raw = result["end_to_end"], result["stage_ms_per_photo"], result["encoder_raw"]
    g, rss = result["gallery"], result["rss_mb"]
    size = f"{g['width']}x{g['height']}"
    pipeline = sum(stages[k] for k in _STAGE_LABELS)
    rows = [
        [label, f"{stages[k]:.2f}", f"{100 * stages[k] / pipeline:.0f}%"]
        for k, label in _STAGE_LABELS.items()
    ]
    rows.append(["**sum, one thread**", f"**{pipeline:.1f}**", "100%"])
    rows.append(
        [
            (
                f"engine end to end (scan, {result['decode_workers']} decode threads, batches of "
                f"{result['batch_size']})"
            ),
            f"{1e3 / e2e['photos_per_s']:.1f}",
            "",
        ]
    )
    rows.append(
        [
            f"*JPEG decode at full size (no draft; {min(12, result['stage_photos'])} photos)*",
            f"{stages['decode_full_size']:.1f}",
            "",
        ]
    )
    rows.append(
        [
            f"*decode + preprocess for a {REAL_MODEL_SIZE}-px model (ViT-S/16, ViT-B/32)*",
            f"{stages['decode_224'] + stages['preprocess_224']:.1f}",
            "",
        ]
    )
    rescan = result["rescan"]
    main = md_table(
        ["", "value"],
        [
            [
                "photos indexed end to end",
                (f"{e2e['photos']} ({size}, JPEG q{g['jpeg_quality']}, {g['mean_bytes'] / 1e6:.1f} MB each)"),
            ],
            ["photos/s, end to end (SearchEngine.update)", f"{e2e['photos_per_s']:.1f}"],
            [
                f"photos/s, encoder alone on preprocessed tensors (batch {raw['batch']})",
                f"{raw['photos_per_s']:.0f}",
            ],
            [
                "runtime",
                f"{result['backend']}, {result['model_image_size']} px input, "
                + (f"{result['torch_threads']} torch thread(s), " if result.get("torch_threads") else "")
                + f"{result['decode_workers']} decode threads",
            ],
            [
                "RSS after imports / after model load / after indexing; peak (MB)",
                (
                    f"{rss['after_imports']:.0f} / {rss['after_model_load']:.0f} / "
                    f"{rss['after_indexing']:.0f}; "
                    f"{rss['peak_after_indexing']:.0f}"
                ),
            ],
            *_limit_rows(result),
            [
                f"re-scan of an unchanged {rescan['files']:,}-file gallery (p50 of {rescan['repeats']})",
                f"{rescan['rescan_p50_s'] * 1e3:.0f} ms (first scan {rescan['first_scan_s'] * 1e3:.0f} ms)",
            ],
        ],
    )
    slowest = max(_STAGE_LABELS, key=lambda k: stages[k])
    findings = [
        (
            f"- End to end the engine indexes {e2e['photos_per_s']:.1f} photos/s of {size} JPEGs; the "
            "encoder alone "
            f"runs at {raw['photos_per_s']:.0f} photos/s, so encoding is "
            f"{e2e['photos_per_s'] / raw['photos_per_s']:.1%} "
            f"of the indexing time: with this model indexing real photos is bound by "
            f"{_STAGE_LABELS[slowest].split(' (')[0]} ({100 * stages[slowest] / pipeline:.0f}% of the "
            "one-thread "
            f"pipeline)."
        ),
        (
            "- The JPEG draft decode (the smallest DCT scale that covers the input size) costs "
            f"{stages['decode']:.1f} ms a photo instead of {stages['decode_full_size']:.1f} ms for a full decode "
            f"({stages['decode_full_size'] / stages['decode']:.1f}x); a {REAL_MODEL_SIZE}-px model decodes "
            f"in {stages['decode_224']:.1f} ms and preprocesses in {stages['preprocess_224']:.1f} ms "
            f"({stages['decode_224'] + stages['preprocess_224']:.1f} ms in all)."
        ),
        (
            f"- Memory: {rss['after_imports']:.0f} MB resident after Python and the engine's imports, "
            f"{rss['after_model_load']:.0f} MB with the model loaded, {rss['after_indexing']:.0f} MB after "
            f"indexing {e2e['photos']} full-size photos"
            + _batch_rss(rss["after_each_batch"])
            + ". "
            + (
                f"The peak, {rss['peak_after_indexing']:.0f} MB, was reached while loading the model."
                if rss["peak_after_indexing"] <= rss["peak_before_indexing"]
                else f"The peak rose from {rss['peak_before_indexing']:.0f} MB to "
                f"{rss['peak_after_indexing']:.0f} MB while indexing."
            )
        ),
    ]
    return (
        f"### Indexing {e2e['photos']} camera-sized photos ({result['backend']})\n\n{main}\n\n"
        f"### Where the time goes: ms per photo, each stage alone on one thread ({result['stage_photos']} "
        f"photos)\n\n"
        + md_table(["stage", "ms/photo", "share"], rows)
        + "\n\nFindings (this run):\n\n"
        + "\n".join(findings)
    )


def _limit_rows(result: dict[str, Any]) -> list[list[str]]:
    """Indexing against the all-core scaled-decode limit (bench.decode_limit), for the model's own input
    size and a 224-px input pipeline; nothing for results measured before the limit was."""
    rows = []
    for label, r in (("the model's input", result), (f"a {REAL_MODEL_SIZE}-px input pipeline", result.get("input_224"))):
        if not r or "decode_limit" not in r:
            continue
        lim = r["decode_limit"]
        rows.append([
            (f"{label} ({lim['model_size']} px): all-core scaled-decode limit, photos/s "
             f"(threads / processes, {lim['workers']} each)"),
            f"{lim['photos_per_s']:.1f} ({lim['threads_photos_per_s']:.1f} / {lim['processes_photos_per_s']:.1f})",
        ])
        rows.append([
            f"{label}: indexing end to end, photos/s, and as a fraction of the limit",
            f"{r['end_to_end']['photos_per_s']:.1f}, **{r['fraction_of_decode_limit']:.0%}**",
        ])
    return rows


def _batch_rss(trace: list[float | None]) -> str:
    values = [v for v in trace if v is not None]
    if len(values) < 2:
        return ""
    return (
        f" (between {min(values):.0f} and {max(values):.0f} MB after each of its {len(values)} batches: "
        "bounded, not growing with the gallery)"
    )


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    stages = result["stage_ms_per_photo"]
    fig, ax = new_figure(1, 7.0, 3.8)
    labels = [label.split(" (")[0] for label in _STAGE_LABELS.values()]
    values = [stages[k] for k in _STAGE_LABELS]
    ax.barh(labels[::-1], values[::-1], color="tab:blue")
    e2e = 1e3 / result["end_to_end"]["photos_per_s"]
    ax.axvline(e2e, color="tab:red", linestyle="--", label=f"engine end to end: {fmt_ms(e2e)} ms/photo")
    ax.set_xlabel("ms per photo (one thread)")
    ax.set_title(f"Indexing {result['gallery']['width']}x{result['gallery']['height']} JPEGs: time per stage")
    ax.legend(fontsize=8)
    return [save_figure(fig, out_dir / "indexing_stages.png")]
