"""`python -m bench` (bench.__main__ and bench.common's records): the section registry, the JSON records and
results.md (fast), and one quick run end to end on the tiny model (slow). Each section's helpers are tested
next to this file, one test module per bench module."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common, quality, search
from bench.__main__ import (
    SECTIONS,
    Section,
    SectionUnavailable,
    load_section,
    main,
    parse_sections,
    render_results_md,
)
from tests.bench.run_dir_fixture import PNG_MAGIC, write_run_dir

REPO = Path(__file__).resolve().parents[2]


def test_atomic_json_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out" / "x.json"
    common.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        common.atomic_write_json(path, {"a": object()})  # fails while serialising: the old file stays
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left behind


def test_sections_parse_in_registry_order():
    assert [s.name for s in parse_sections("quality, search")] == ["search", "quality"]
    with pytest.raises(Exception, match="unknown section.*nope.*choose from encoders, search"):
        parse_sections("search,nope")


def test_a_missing_section_module_is_a_clear_error():
    with pytest.raises(SectionUnavailable, match="module bench.not_written does not exist"):
        load_section(Section("later", "bench.not_written", "Later"))
    for section in SECTIONS:  # each module the registry names has the three functions
        module = load_section(section)
        assert all(callable(getattr(module, f)) for f in ("run", "to_markdown", "plot")), section.name


def test_main_records_why_a_section_is_skipped(tmp_path):
    out = tmp_path / "results"
    assert main(["--only", "quality", "--out", str(out), "--model", str(tmp_path / "no-such-run")]) == 0
    record = json.loads((out / "quality.json").read_text())
    assert record["result"] is None and "no-such-run does not exist" in record["skipped"]
    assert record["machine"]["cpu"] and record["command"].startswith("python -m bench --only quality")
    md = (out / "results.md").read_text()
    assert "## Retrieval quality vs size" in md and "Skipped: model" in md and record["machine"]["cpu"] in md


def test_results_md_marks_sections_from_earlier_runs(tmp_path):
    facts = common.machine_facts(None, False)
    old = {**facts, "date": "2020-01-01T00:00:00+00:00", "git_commit": "abc"}
    run = write_run_dir(tmp_path / "runs" / "offline")
    record = {
        "section": "quality",
        "title": "Retrieval quality vs size",
        "command": "python -m bench",
        "machine": old,
        "model": "runs/offline",
        "wall_s": 1.0,
        "skipped": None,
        "plots": ["quality_rsum_vs_params.png"],
        "result": quality.run(False, tmp_path, run),
    }
    common.atomic_write_json(tmp_path / "quality.json", record)
    (tmp_path / "search.json").write_text("{not json")
    md = render_results_md(tmp_path, facts, "python -m bench --only search")
    assert "measured in an earlier run: `python -m bench`, 2020-01-01" in md
    assert "![Retrieval quality vs size](quality_rsum_vs_params.png)" in md
    assert "search.json cannot be read" in md


def test_render_rewrites_results_md_and_plots_from_the_jsons_without_measuring(tmp_path):
    out = tmp_path / "results"
    assert main(["--render", "--out", str(out)]) == 1  # nothing to render: an error, not an empty page
    facts = {**common.machine_facts(None, False), "date": "2020-01-01T00:00:00+00:00", "cpu": "Some CPU"}
    record = {
        "section": "quality",
        "title": "Retrieval quality vs size",
        "command": "python -m bench --model runs/offline",
        "machine": facts,
        "model": "runs/offline",
        "wall_s": 1.0,
        "other_cpu": {"share": 0.3, "other_cpu_s": 0.6, "wall_s": 1.0, "cores": 2},
        "skipped": None,
        "plots": [],
        "result": quality.run(False, tmp_path, write_run_dir(tmp_path / "runs" / "offline")),
    }
    common.atomic_write_json(out / "quality.json", record)
    assert main(["--render", "--out", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "Written by `python -m bench --model runs/offline`. Machine: Some CPU" in md  # the run's, not ours
    assert "measured in an earlier run" not in md and "the machine was shared" in md
    rendered = json.loads((out / "quality.json").read_text())
    assert rendered["plots"] and all((out / png).read_bytes()[:8] == PNG_MAGIC for png in rendered["plots"])
    assert {k: v for k, v in rendered.items() if k != "plots"} == {k: v for k, v in record.items() if k != "plots"}


# ------------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_end_to_end(tiny_run, tmp_path):
    _, root, _ = tiny_run
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--out",
        str(out),
        "--model",
        str(root / "runs" / "tiny"),
        "--work-dir",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-5000:]

    records = {s.name: json.loads((out / f"{s.name}.json").read_text()) for s in SECTIONS}
    for name, record in records.items():
        assert record["section"] == name and record["skipped"] is None and record["result"], name
        assert record["machine"]["quick"] is True and record["machine"]["cpu"] and record["wall_s"] > 0
        for png in record["plots"]:
            assert (out / png).read_bytes()[:8] == PNG_MAGIC, png

    s = records["search"]["result"]
    assert s["dims"] == [64, 512] and s["sizes"] == [1_000, 10_000, 100_000]
    gbps = max(s["bandwidth"]["gbps_1_thread"], s["bandwidth"]["gbps_all_threads"])
    llc = records["search"]["machine"]["last_level_cache_bytes"] or 32 * 2**20
    for row in s["rows"]:
        assert row["p50_ms"] > 0 and 0 <= row["recall_clustered"] <= 1 and 0 <= row["recall_uniform"] <= 1
        if row["key"] == "numpy_fp32":  # exact search against itself
            assert row["recall_clustered"] == 1.0 and row["recall_uniform"] == 1.0
            if row["scanned_bytes"] > 2 * llc:  # streamed from RAM: cannot beat the bandwidth
                # both are measured; on a shared CI machine either can be off by some percent
                assert row["p50_ms"] > 0.8 * search.scan_limit_ms(row["scanned_bytes"], gbps)
    assert len(s["approximate"]) == 2
    for approx in s["approximate"]:
        assert approx["build_s_clustered"] > 0
        for entry in approx["by_nprobe"].values():
            assert (
                entry["p50_ms"] > 0
                and 0 <= entry["recall_clustered"] <= 1
                and 0 <= entry["recall_uniform"] <= 1
            )
    assert s["store"]["sqlite_bytes_per_photo"] > 0 and s["store"]["matrix_bytes_per_photo"] == 4 * 64

    ix = records["indexing"]["result"]
    assert ix["end_to_end"]["photos"] == 12 and ix["end_to_end"]["photos_per_s"] > 0
    assert all(v > 0 for v in ix["stage_ms_per_photo"].values()) and ix["encoder_raw"]["photos_per_s"] > 0
    assert (
        ix["rss_mb"]["peak_after_indexing"]
        >= ix["rss_mb"]["after_model_load"]
        > ix["rss_mb"]["after_imports"]
    )
    assert ix["rescan"]["rescan_p50_s"] > 0

    st = records["startup"]["result"]
    assert st["backend"] == "torch" and all(r["first_results"] == 10 for r in st["cold_starts"])
    med = st["cold_median_s"]
    assert med["total"] > med["imports"] > 0 and med["model_load"] > 0
    assert all(
        st["warm"][k]["p50_ms"] > 0 for k in ("tokenize", "encode_text", "search_vector", "search_text")
    )

    labels = [r["label"] for r in records["quality"]["result"]["rows"]]
    assert "student (this run)" in labels and "teacher, fine-tuned" in labels

    md = (out / "results.md").read_text()
    assert records["search"]["machine"]["cpu"] in md and "--quick" in md
    for section in SECTIONS:
        assert f"## {section.title}" in md
    assert "\nSkipped: " not in md and "cannot be rendered" not in md
