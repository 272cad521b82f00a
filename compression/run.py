"""`python -m compression.run`: distil a CLIP teacher into a small dual encoder and evaluate it.

With no arguments: the offline default (compression/configs/offline.yaml): the clip art pipeline, an assembled
teacher (pretrained EfficientNet-Lite2 + MiniLM) compressed with MoTIS, on the CPU, into runs/offline.
``--config synthetic``: the synthetic benchmark (teacher trained from scratch).
Data-parallel on N GPUs (or N CPU processes): ``torchrun --nproc_per_node N -m compression.run ...``
(see compression/distributed.py and the README's multi-GPU section).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from compression.config import CONFIG_DIR, default_cache_dir, load_config
from formats.cli import Interrupted, cli_main
from formats.errors import UserError

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    bundled = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    p = argparse.ArgumentParser(
        prog="python -m compression.run",
        description="Two-stage (MoTIS) compression of a CLIP teacher into a small dual encoder, then "
        "recall@K evaluation. Re-running the same command resumes an interrupted run.",
        epilog="Several GPUs or machines: put torchrun in front, e.g. `torchrun --standalone --nproc_per_node 8 "
        "-m compression.run --config paper-vitb32-vits16-text6`; batch sizes in the config are global batches.",
    )
    p.add_argument("--config", default=None, help=f"YAML config file or bundled name ({bundled}); default: offline, the clip art model; synthetic: the synthetic benchmark")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set stage2.kd_weight=0 (repeatable)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent folder of run directories (default: runs)")
    p.add_argument("--name", default=None, help="run directory name under --runs-dir (default: the config's run name)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where generated data and from-scratch teachers are cached (default: $XDG_CACHE_HOME/pocketclip)")
    p.add_argument("--restart", action="store_true", help="delete the run directory and start over instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return p.parse_args(argv)


def pipeline_of(config: str | None) -> str:
    """Which pipeline a config runs: "clipart" (compression/clipart_pipeline.py) or "clip" (the open_clip one)."""
    from compression.config import RUN_DEFAULT_CONFIG, read_config_dict

    return read_config_dict(config or RUN_DEFAULT_CONFIG).get("pipeline", "clip")


def run_clipart_main(args: argparse.Namespace) -> int:
    """The clip art pipeline (assembled teacher -> MoTIS student), same flags as the open_clip one."""
    from compression.clipart_pipeline import load_clipart_config, run_clipart
    from compression.config import RUN_DEFAULT_CONFIG

    cfg = load_clipart_config(args.config or RUN_DEFAULT_CONFIG, args.overrides)
    if args.name:
        cfg.name = args.name
    run_dir = args.runs_dir / cfg.name
    try:  # user errors (missing clip art, word list, photos, weights; a bad run dir): cli_main, exit 2
        metrics = run_clipart(cfg, run_dir, args.cache_dir or default_cache_dir(), args.restart, not args.no_progress)
    except KeyboardInterrupt as e:
        raise Interrupted(f"interrupted; run the same command again to resume after the last finished phase in "
                          f"{run_dir}") from e
    print((run_dir / "report.md").read_text())
    r = metrics["results"]["test"]
    print(f"student RSUM {r['student']['rsum']:.1f} = {100 * r['student']['rsum'] / r['assembled teacher']['rsum']:.1f}% "
          f"of the teacher's {r['assembled teacher']['rsum']:.1f} (clip art test); run directory: {run_dir}")
    return 0


@cli_main("compression.run")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # libraries (open_clip logs to the root logger, faiss's loader) stay at WARNING; ours at --log-level
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("compression").setLevel(args.log_level)
    from compression.distributed import env_world, shutdown

    if env_world().rank != 0:  # under torchrun, rank 0 logs; the others only warn
        logging.getLogger("compression").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    if pipeline_of(args.config) == "clipart":
        return run_clipart_main(args)
    cfg = load_config(args.config, args.overrides)  # ConfigError: a user error
    from compression.data.captioned import ImageDecodeError
    from compression.pipeline import run_pipeline

    if args.name:
        cfg.name = args.name
    run_dir = args.runs_dir / cfg.name
    cache_dir = args.cache_dir or default_cache_dir()
    try:
        metrics = run_pipeline(cfg, run_dir, cache_dir, restart=args.restart, progress=not args.no_progress)
    except ImageDecodeError as e:  # from a DataLoader worker the message carries the worker's traceback: keep its last line
        line = [ln for ln in str(e).splitlines() if ln.strip()][-1].split("ImageDecodeError: ")[-1]
        raise UserError(f"{line}; remove or replace the file, then run the same command again to resume") from e
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; run the same command again to resume from the last checkpoint in {run_dir}") from None
    finally:
        shutdown(env_world())
    if not metrics:  # a rank other than 0 of a torchrun job: rank 0 reports
        return 0
    r = metrics["retrieval"]
    ref = r.get("teacher_finetuned", r["teacher_zero_shot"])["rsum"]
    print((run_dir / "report.md").read_text())
    print(f"student RSUM {r['student']['rsum']:.1f} = {100 * r['student']['rsum'] / ref:.1f}% of the teacher's {ref:.1f}; "
          f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
