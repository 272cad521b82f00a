"""ExecuTorch programs of the measured encoders, lowered in worker processes and loaded for timing."""

from __future__ import annotations

import copy
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bench.encoder_specs import SEED, EncoderSpec, Settings
from bench.encoder_towers import BuiltEncoder, build_encoder, random_token_sequences

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# ExecuTorch programs (lowered in worker processes)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportJob:
    """One .pte to write: an encoder at a precision and a fixed batch (text: batch 1, dynamic length)."""

    spec: EncoderSpec
    precision: str  # "fp32" or "int8"
    batch: int
    out_dir: str
    calibration: int  # random samples for int8

    @property
    def name(self) -> str:
        return f"{self.spec.key}_xnnpack_{self.precision}_b{self.batch}"

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / f"{self.name}.pte"


def lower_encoder(
    built: BuiltEncoder, precision: str, batch: int, calibration: int
) -> tuple[bytes, dict[str, Any]]:
    """(.pte bytes, facts) of ``built``'s export module, as ``export.executorch.build_programs`` lowers it.

    image: (batch, 3, S, S) float32 -> (batch, D). text: (1, L) ids, 2 <= L <= context -> (1, D).
    int8: PT2E (``export.xnnpack_int8``), calibrated on ``calibration`` random inputs.
    """
    from export.executorch import lower_to_executorch
    from export.wrappers import image_example, text_dynamic_shapes, text_example

    what = f"{built.spec.key} {precision} batch {batch}"
    module = built.export_module
    if built.spec.kind == "image":
        example_1 = image_example(built.image_size)
        example, dynamic = (example_1[0].expand(batch, -1, -1, -1).contiguous(),), None
    else:
        if batch != 1:
            raise ValueError(f"{what}: text programs are exported at batch 1 (dynamic length), as deployed")
        example_1 = example = text_example(built.context_length, built.eot_id)
        dynamic = text_dynamic_shapes(built.context_length)
    if precision == "int8":
        from export.xnnpack_int8 import Int8Embedding, image_batches, quantize_pt2e, text_batches

        gen = torch.Generator().manual_seed(SEED)
        module = copy.deepcopy(module)
        if built.spec.kind == "image":
            size = built.image_size
            batches = image_batches(torch.randn(calibration, 3, size, size, generator=gen), batch_size=8)
        else:
            module.token_embedding = Int8Embedding(module.token_embedding)
            seqs = random_token_sequences(calibration, built.context_length, built.eot_id, gen)
            batches = text_batches(seqs)
        module = quantize_pt2e(module, example_1, dynamic, batches, what)
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r} (fp32 or int8)")
    return lower_to_executorch(module, example, dynamic, what)


def export_program(job: ExportJob) -> dict[str, Any]:
    """Worker: build, lower and write one program. Returns its facts, or ``{"error": ...}``."""
    from export.errors import first_line

    torch.set_num_threads(1)  # lowering is Python; the workers share the cores
    started = time.perf_counter()
    try:
        data, facts = lower_encoder(build_encoder(job.spec), job.precision, job.batch, job.calibration)
    except Exception as e:  # noqa: BLE001 - timm, torch.export, PT2E and lowering raise all kinds of errors
        return {"error": f"{type(e).__name__}: {first_line(e)}", "export_s": time.perf_counter() - started}
    job.path.write_bytes(data)
    return {"file": job.path.name, "mb": len(data) / 1e6, "export_s": time.perf_counter() - started, **facts}


def export_jobs(specs: Sequence[EncoderSpec], s: Settings, out_dir: Path) -> list[ExportJob]:
    """The programs a run exports, the slowest to lower first (so that the workers finish together)."""
    jobs = []
    for spec in specs:
        if spec.role == "candidate" and not s.candidates_in_executorch:
            continue
        text_student = spec.kind == "text" and spec.role != "teacher"
        if text_student and spec.text_layers not in s.text_layers_in_executorch:
            continue
        batches = (1, s.batch) if spec.kind == "image" and s.executorch_batch else (1,)
        for precision in ("fp32", "int8") if s.int8 else ("fp32",):
            jobs += [ExportJob(spec, precision, b, str(out_dir), s.calibration) for b in batches]
    weight = {"teacher": 0, "student": 1, "candidate": 2}
    return sorted(jobs, key=lambda j: (j.precision != "int8", weight[j.spec.role], j.spec.kind != "text"))


def start_exports(jobs: Sequence[ExportJob], workers: int) -> tuple[ProcessPoolExecutor, dict[str, Future]]:
    """Submit every job to a pool of ``workers`` fresh processes (spawn: no forked torch threads)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return pool, {job.name: pool.submit(export_program, job) for job in jobs}


def collect_exports(jobs: Sequence[ExportJob], futures: dict[str, Future]) -> dict[str, dict[str, Any]]:
    """Wait for every program; a failure of an encoder that is not optional raises RuntimeError."""
    programs = {}
    for job in tqdm(jobs, desc="exporting ExecuTorch programs", disable=None):
        try:
            facts = futures[job.name].result()
        except Exception as e:  # noqa: BLE001 - a worker killed (memory): BrokenProcessPool and kin
            facts = {"error": f"{type(e).__name__}: {e}"}
        programs[job.name] = {"encoder": job.spec.key, "precision": job.precision, "batch": job.batch,
                              **facts}
        if "error" in facts:
            logger.warning("cannot export %s: %s", job.name, facts["error"])
            if not job.spec.optional:
                raise RuntimeError(f"ExecuTorch export of {job.name} failed: {facts['error']}")
        else:
            logger.info("exported %s: %.1f MB in %.0f s", job.name, facts["mb"], facts["export_s"])
    return programs


def load_method(path: Path):
    """The ``forward`` method of a .pte, loaded by ``executorch.runtime`` as export.runtimes does."""
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed kernels (int8 programs)
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path).load_method("forward")


def executorch_call(method) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: method.execute([x.contiguous()])[0]


def xnnpack_threads() -> int | None:
    """Threads of ExecuTorch's shared threadpool (the XNNPACK delegate's), None if unknown."""
    try:
        from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count
    except ImportError:
        return None
    return int(_threadpool_get_thread_count())
