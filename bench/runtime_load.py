"""Which desktop runtime starts fastest: each way of loading a bundle's programs timed in a fresh process.

    python -m bench.runtime_load BUNDLE [BUNDLE ...]     # prints one JSON line per way, then a table

Ways measured (each in its own fresh Python, the files already in the page cache):

* ``executorch.runtime`` - what the engine's ExecuTorch runtime does; its Python package imports
  ``executorch.exir`` (the export compiler) and torch;
* ``executorch native binding`` - the pybindings extension (``executorch/extension/pybindings/_C``)
  loaded straight from its file, skipping ``portable_lib.py`` and ``executorch.exir``; the extension
  links libtorch, libtorch_python and the CUDA libraries, so they load all the same, and it takes
  torch tensors as inputs, so running a program still needs ``import torch``;
* ``executorch native binding + torch`` - the same after ``import torch``: the least that runs a query;
* ``onnxruntime`` - the engine's ONNX runtime: one native library, numpy in and out.

For each: seconds to import, to load both programs, to encode one query; resident memory after; and
whether torch or executorch.exir ended up imported. The figures feed the choice of the desktop
default (README, "Startup") and bench.startup's comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from formats.cli import cli_main

logger = logging.getLogger(__name__)

WAYS = ("executorch.runtime", "executorch native binding", "executorch native binding + torch", "onnxruntime")


def _query_tokens(bundle: Path) -> Any:
    from app.engine.runtimes.bundle import read_bundle

    info = read_bundle(bundle, verify=False)
    return info.tokenizer.encode_query("a red circle on the left of a blue square")


def load_in_child(started: float, way: str, bundle: str) -> dict[str, Any]:
    """Runs in a fresh process: import the runtime, load both programs, encode one query. time.time() stamps."""
    from bench.common import current_rss_mb

    stamps: dict[str, float] = {"started": started, "harness": time.time()}
    tokens = _query_tokens(Path(bundle))
    stamps["tokenizer"] = time.time()
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    image, text = (Path(bundle) / manifest[e]["program"] for e in ("image", "text"))
    ran, error = False, None
    if way == "onnxruntime":
        import onnxruntime as ort

        stamps["import"] = time.time()
        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (image, text)]
        stamps["load"] = time.time()
        sessions[1].run(None, {sessions[1].get_inputs()[0].name: tokens})
        ran = True
    elif way == "executorch.runtime":
        import torch
        from executorch.runtime import Runtime

        stamps["import"] = time.time()
        runtime = Runtime.get()
        methods = [runtime.load_program(p).load_method("forward") for p in (image, text)]
        stamps["load"] = time.time()
        methods[1].execute([torch.from_numpy(tokens)])
        ran = True
    else:  # the native extension by file path: no portable_lib.py, no executorch.exir (+ torch: to pass tensors)
        import importlib.machinery
        import importlib.util

        feed = tokens
        if way.endswith("+ torch"):
            import torch

            feed = torch.from_numpy(tokens)

        spec = importlib.util.find_spec("executorch")
        folder = Path(next(iter(spec.submodule_search_locations))) / "extension" / "pybindings"
        path = next(folder.glob("_C*.so"))
        try:
            loader = importlib.machinery.ExtensionFileLoader("executorch.extension.pybindings._C", str(path))
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_file_location(loader.name, str(path), loader=loader)
            )
            loader.exec_module(module)
            stamps["import"] = time.time()
            programs = [module._load_for_executorch(str(p)) for p in (image, text)]
            stamps["load"] = time.time()
            try:
                programs[1].forward((feed,))  # numpy is refused: the binding takes torch tensors only
                ran = True
            except Exception as e:  # noqa: BLE001 - the point is to record what the binding refuses
                error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        except Exception as e:  # noqa: BLE001 - record why the extension does not load on its own
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            stamps.setdefault("import", time.time())
            stamps.setdefault("load", time.time())
    stamps["first_query"] = time.time()
    return {
        "way": way,
        "stamps": stamps,
        "ran_a_query": ran,
        "error": error,
        "rss_mb": current_rss_mb(),
        "torch_imported": "torch" in sys.modules,
        "exir_imported": "executorch.exir" in sys.modules,
    }


def measure(way: str, bundle: Path) -> dict[str, Any]:
    """One fresh process for ``way``; seconds per step measured from the launch."""
    from bench.common import run_child

    child = run_child("bench.runtime_load:load_in_child", {"way": way, "bundle": str(Path(bundle).resolve())})
    st, out = child.result["stamps"], dict(child.result)
    out["seconds"] = {
        "interpreter": st["started"] - child.launched,
        "import": st["import"] - st["tokenizer"],
        "load": st["load"] - st["import"],
        "first_query": st["first_query"] - st["load"],
        "total": st["first_query"] - child.launched - (st["harness"] - st["started"]) - (st["tokenizer"] - st["harness"]),
    }
    out["bundle"] = str(bundle)
    return out


@cli_main("bench.runtime_load")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.runtime_load", description=__doc__.split("\n")[0])
    p.add_argument("bundles", type=Path, nargs="+", help="export bundles (ExecuTorch and/or ONNX)")
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per way (the median is shown)")
    p.add_argument("--out", type=Path, default=None, help="also write every run and the medians to this JSON file")
    args = p.parse_args(argv)
    from bench.common import OtherCpu, atomic_write_json, machine_facts

    rows, every = [], []
    with OtherCpu() as other:
        _measure_all(args, rows, every)
    if args.out:
        atomic_write_json(args.out, {"command": "python -m bench.runtime_load " + " ".join(argv or sys.argv[1:]),
                                     "machine": machine_facts(None, False), "other_cpu": other.as_dict(),
                                     "medians": rows, "runs": every})
    print(f"other processes used {other.as_dict()}")
    _print_table(rows)
    return 0


def _measure_all(args: argparse.Namespace, rows: list[dict[str, Any]], every: list[dict[str, Any]]) -> None:
    for bundle in args.bundles:
        backend = json.loads((bundle / "manifest.json").read_text())["backend"]
        ways = ("onnxruntime",) if backend == "onnx" else WAYS[:3]
        for way in ways:
            runs = [measure(way, bundle) for _ in range(args.repeats)]
            every += runs
            rows.append(sorted(runs, key=lambda r: r["seconds"]["total"])[len(runs) // 2])


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'way':28s} {'bundle':28s} {'import s':>8s} {'load s':>7s} {'query s':>8s} {'total s':>8s} "
          f"{'RSS MB':>7s} torch exir ran")
    for r in rows:
        s = r["seconds"]
        print(f"{r['way']:28s} {Path(r['bundle']).name:28s} {s['import']:8.3f} {s['load']:7.3f} "
              f"{s['first_query']:8.4f} {s['total']:8.3f} {r['rss_mb']:7.0f} {r['torch_imported']!s:5s} "
              f"{r['exir_imported']!s:5s} {r['ran_a_query']} {r['error'] or ''}")


if __name__ == "__main__":
    sys.exit(main())
