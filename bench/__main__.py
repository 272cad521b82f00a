"""`python -m bench`: measure pocketclip on this machine, every section side by side in one run.

    python -m bench --quick                    # a few minutes: smaller sizes, fewer repeats
    python -m bench                            # the full run whose results are committed (see below)
    python -m bench --only search,quality      # some sections; the others' results stay as they were
    python -m bench --model bundles/synthetic-executorch   # the engine on ExecuTorch instead of PyTorch

Sections (one module each under bench/, run in this order):

* ``encoders``  - the image and text encoders at real size (CLIP ViT-B/32 teacher vs the ViT-S/16
  student...), eager PyTorch vs ExecuTorch;
* ``search``    - top-10 latency over 1k-1M stored embeddings: numpy fp32 (the engine), fp16, int8,
  FAISS exact and approximate, against this machine's memory-bandwidth limit; memory per photo;
* ``indexing``  - photos/s of the engine's indexer on 4000x3000 JPEGs and where the time goes;
* ``startup``   - fresh process to first result, and warm query latency at 10k photos;
* ``quality``   - retrieval quality vs size and speed, from the compression run's metrics.json.

Writes ``<out>/<section>.json`` (every figure, plus the machine's facts and the command),
``<out>/results.md`` (all sections' tables, headed by the machine) and ``<out>/*.png``. Absolute
times hold for the machine named in them; ratios between rows of a table were measured in the same
run. Every file is written atomically: an interrupted run leaves the previous results whole.

The full run, for the committed results, on an idle machine (nothing else running):

    python -m bench --model runs/synthetic    # python -m compression.run --config synthetic

How long each section took is its ``wall_s`` in bench/results/<section>.json (and in results.md);
encoders dominate (lowering the real-size towers to ExecuTorch in 2 worker processes), then search
(1M rows, two embedding sizes). Memory is set by search: 1M x 512 float32 embeddings (2 GB), a
uniform set beside them and one method's copy at a time. A section that needs --model (indexing,
startup, quality) is skipped, with the reason recorded in its JSON and in results.md, when the model
does not exist.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formats.cli import cli_main

logger = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
DEFAULT_MODEL = REPO / "runs" / "synthetic"  # the 32-px synthetic student: the committed results' model
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Section:
    """A benchmark section; ``module`` has run(quick, work_dir, **needs), to_markdown(result) and
    plot(result, out_dir)."""

    name: str
    module: str
    title: str
    model: str = "none"  # "none", "optional" (used when it exists) or "required" (skipped without it)
    threads: bool = False  # run() takes threads= (--threads, None for the section's own default)


SECTIONS = (
    Section("encoders", "bench.encoders", "Encoders at real size"),
    Section("search", "bench.search", "Search: stored embeddings and query latency", model="optional"),
    Section("indexing", "bench.indexing", "Indexing real-sized photos", model="required", threads=True),
    Section("startup", "bench.startup", "Startup and query latency", model="required", threads=True),
    Section("quality", "bench.quality", "Retrieval quality vs size", model="required"),
)
BY_NAME = {s.name: s for s in SECTIONS}


class SectionUnavailable(RuntimeError):
    """A section's module cannot be imported (not written yet, or a missing dependency)."""


def load_section(section: Section) -> Any:
    """The section's module, imported now; a missing module is a clear error for this section only."""
    try:
        return importlib.import_module(section.module)
    except ModuleNotFoundError as e:
        if e.name == section.module:
            raise SectionUnavailable(
                f"section {section.name!r}: module {section.module} does not exist "
                f"(expected at {REPO / (section.module.replace('.', '/') + '.py')})"
            ) from e
        raise SectionUnavailable(
            f"section {section.name!r}: {section.module} needs {e.name!r}, which is not installed ({e})"
        ) from e


def parse_sections(text: str) -> list[Section]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in BY_NAME if n in names]  # always in the registry's order


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure pocketclip on this machine: encoders, search, indexing, startup and quality, "
        "side by side in one run. Writes one JSON per section, results.md and PNG plots to --out.",
        epilog="The full run for the committed results: `python -m bench --model runs/synthetic` on an idle "
        "machine (its time and memory: see bench/__main__.py and bench/results/*.json).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a short run (a few minutes): search up to 100k rows instead of 1M, 12 photos to index "
        "instead of 100, 2 cold starts instead of 5, fewer repeats everywhere",
    )
    p.add_argument(
        "--only",
        type=parse_sections,
        default=list(SECTIONS),
        metavar="SECTION[,SECTION]",
        help=f"run only these sections (comma-separated: {', '.join(BY_NAME)}); the results of the "
        "others already in --out are kept and still listed in results.md (default: all)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for <section>.json, results.md and the PNGs (default: bench/results, whose "
        "full-run contents are committed and shown in the README)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="the model to measure the engine with: a compression run directory (student.json; "
        "PyTorch) such as runs/synthetic, or one export bundle (manifest.json; ExecuTorch) such as "
        "bundles/synthetic-executorch. Sets the search's embedding size; indexing, startup and "
        "quality need it and are skipped, with the reason recorded, when it does not exist "
        "(default: runs/synthetic, the synthetic benchmark's student)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cap the threads of every library (PyTorch, numpy's BLAS, FAISS/OpenMP, also in child "
        "processes) to this many. Default: each library's own default (all cores), except where a "
        "section measures the engine as the app runs it (indexing: the cores the 2 decode threads "
        "leave; queries: 1 thread)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where scratch files go (the generated gallery, 1M-row matrices: up to ~3 GB); "
        "deleted afterwards (default: the system's temporary folder)",
    )
    p.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite results.md and the plots in --out from the section JSONs already "
        "there (after a change to how results are shown); the figures and their machine stay as measured",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every step of every library (DEBUG)")
    return p


def _cap_threads(threads: int) -> None:
    """Set before numpy, torch or FAISS are imported, so their pools (and child processes') start capped."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def _model_status(model: Path) -> str | None:
    """None when --model can be used, else the reason it cannot."""
    from bench.common import display_path, read_model_info

    if not model.exists():
        return (
            f"model {display_path(model)} does not exist: train it with `python -m compression.run --config synthetic` (runs/synthetic) or pass "
            f"--model with a run directory or an export bundle"
        )
    try:
        read_model_info(model)
    except ValueError as e:
        return f"--model {display_path(model)}: {e}"
    return None


def run_section(
    section: Section, quick: bool, work_dir: Path, model: Path, model_problem: str | None, threads: int | None
) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None), or (None, why it was skipped). Raises SectionUnavailable, and what the section
    raises."""
    from bench.common import SkipSection

    module = load_section(section)
    kwargs: dict[str, Any] = {}
    if section.model != "none":
        if model_problem is None:
            kwargs["model"] = model
        elif section.model == "required":
            return None, model_problem
    if section.threads:
        kwargs["threads"] = threads
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        return module.run(quick, work_dir, **kwargs), None
    except SkipSection as e:
        return None, str(e)


def render_results_md(out: Path, facts: dict[str, Any], command: str) -> str:
    """results.md: this run's machine and command, then every section whose JSON is in ``out``, in the
    registry's order; a section measured in an earlier run says so."""
    from bench.common import describe_machine, other_cpu_sentence

    parts = [
        "# Benchmarks",
        "",
        f"Written by `{command}`. Machine: {describe_machine(facts)}",
        "",
        (
            "Absolute times hold for this machine only; ratios between rows of one table were measured "
            "side by side in the same run. Every figure is in the section's JSON next to this file, with "
            "the machine's facts."
        ),
    ]
    for section in SECTIONS:
        path = out / f"{section.name}.json"
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
            title, machine = record["title"], record["machine"]
        except (OSError, ValueError, KeyError) as e:
            parts += ["", f"## {section.title}", "", f"*{path.name} cannot be read: {e}*"]
            continue
        parts += ["", f"## {title}", ""]
        note = f"*{record['wall_s']:.0f} s" + (f", model `{record['model']}`" if record.get("model") else "")
        if machine.get("date") != facts.get("date"):
            note += (
                f"; measured in an earlier run: `{record['command']}`, {machine.get('date')}, commit "
                f"{machine.get('git_commit')}"
            )
            if machine.get("cpu") != facts.get("cpu") or machine.get("cores") != facts.get("cores"):
                note += f", on another machine ({machine.get('cpu')}, {machine.get('cores')} cores)"
        parts += [note + ".*", ""]
        shared = other_cpu_sentence(record.get("other_cpu"))
        if shared:
            parts += [f"*{shared}*", ""]
        if record.get("skipped"):
            parts.append(f"Skipped: {record['skipped']}")
            continue
        try:
            parts.append(load_section(section).to_markdown(record["result"]))
        except Exception as e:  # noqa: BLE001 - one unreadable section must not cost results.md the others
            logger.warning("cannot render %s: %s", path, e)
            parts.append(f"*{path.name} cannot be rendered: {type(e).__name__}: {e}*")
            continue
        parts += ["", *(f"![{title}]({png})" for png in record.get("plots", []))]
    return "\n".join(parts) + "\n"


def write_results_md(out: Path, facts: dict[str, Any], command: str) -> Path:
    from bench.common import atomic_write_bytes

    path = out / "results.md"
    atomic_write_bytes(path, render_results_md(out, facts, command).encode())
    return path


def render_existing(out: Path) -> int:
    """--render: plots and results.md again from ``out``'s JSONs, headed by the newest run's machine."""
    from bench.common import atomic_write_json

    records = {}
    for section in SECTIONS:
        path = out / f"{section.name}.json"
        if path.is_file():
            try:
                records[section.name] = (path, json.loads(path.read_text()))
            except (OSError, ValueError) as e:
                logger.error("cannot read %s: %s", path, e)
                return 1
    if not records:
        logger.error("--render: %s holds no section JSON (%s)", out, ", ".join(f"{n}.json" for n in BY_NAME))
        return 1
    for name, (path, record) in records.items():
        if record.get("result") is not None:
            record["plots"] = [p.name for p in load_section(BY_NAME[name]).plot(record["result"], out)]
            atomic_write_json(path, record)
    newest = max((r for _, r in records.values()), key=lambda r: r["machine"]["date"])
    logger.info("wrote %s", write_results_md(out, newest["machine"], newest["command"]))
    return 0


@cli_main("bench")
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            build_parser().error(f"--threads must be >= 1, got {args.threads}")
        _cap_threads(args.threads)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        logging.getLogger("bench").setLevel(logging.INFO)

    from bench.common import OtherCpu, atomic_write_json, display_path, machine_facts

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "-m", "bench", *argv])
    out = args.out.resolve()
    if args.render:
        return render_existing(out)
    model = args.model.resolve()
    model_problem = _model_status(model)
    if model_problem:
        logger.warning("%s", model_problem)
    facts = machine_facts(args.threads, args.quick)
    failed: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pocketclip-bench-", dir=args.work_dir) as tmp:
        for section in args.only:
            logger.info("=== %s (%s)", section.name, section.title)
            t0 = time.perf_counter()
            try:
                with OtherCpu() as other:
                    result, skipped = run_section(
                        section, args.quick, Path(tmp) / section.name, model, model_problem, args.threads
                    )
                module = load_section(section)
                record = {
                    "section": section.name,
                    "title": section.title,
                    "command": command,
                    "machine": facts,
                    "model": display_path(model) if section.model != "none" and not model_problem else None,
                    "wall_s": time.perf_counter() - t0,
                    "other_cpu": other.as_dict(),
                    "skipped": skipped,
                    "plots": [],
                    "result": result,
                }
                if result is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    record["plots"] = [p.name for p in module.plot(result, out)]
            except SectionUnavailable as e:
                logger.error("%s", e)
                failed.append(section.name)
                continue
            except Exception:  # one section's failure must not cost the others' results
                logger.exception("section %s failed", section.name)
                failed.append(section.name)
                continue
            atomic_write_json(out / f"{section.name}.json", record)
            write_results_md(out, facts, command)
            logger.info(
                "%s: %s in %.0f s",
                section.name,
                f"skipped ({skipped})" if skipped else "done",
                record["wall_s"],
            )
    write_results_md(out, facts, command)
    logger.info("wrote %s in %.0f s", display_path(out / "results.md"), time.perf_counter() - start)
    if failed:
        logger.error("failed sections: %s (see the errors above)", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
