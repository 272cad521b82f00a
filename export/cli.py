"""What `python -m export.executorch` and `python -m export.coreml` share: flags, defaults, error exits."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from export.bundle import check_destination
from export.errors import ExportError
from export.source import DEFAULT_RUN_DIR, ExportSource, load_export_source
from formats.cli import cli_main
from formats.errors import UserError

logger = logging.getLogger(__name__)

# errors a user can act on: one line on stderr, exit status 2, no traceback
# (an exporter's OSError is about the paths it was given: a full disk, a folder it may not write)
USER_ERRORS = (UserError, OSError)


def default_out_dir(run_dir: Path, backend: str, precision: str, default_precision: str) -> Path:
    """bundles/<run name>-<backend>[-<precision> when not the backend's default], e.g. bundles/offline-coreml."""
    suffix = "" if precision == default_precision else f"-{precision}"
    return Path("bundles") / f"{Path(run_dir).resolve().name}-{backend}{suffix}"


def prepare_export(
    run_dir: Path, out_dir: Path | None, backend: str, label: str, precision: str,
    precisions: tuple[str, ...], default_precision: str,
) -> tuple[Path, ExportSource]:
    """What every exporter does first: check the precision, resolve and check the output folder
    (default: ``default_out_dir``), load the checkpoint. ``label`` names the backend in the error."""
    if precision not in precisions:
        raise ExportError(f"precision {precision!r} is not one of {precisions} for {label}")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(run_dir, backend, precision, default_precision)
    check_destination(out_dir)
    return out_dir, load_export_source(run_dir)


def add_common_arguments(
    p: argparse.ArgumentParser, precisions: tuple[str, ...], default_precision: str
) -> None:
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_RUN_DIR,
        help=f"run directory written by `python -m compression.run` (default: {DEFAULT_RUN_DIR})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bundle directory to write (default: bundles/<run>-<backend>[-<precision>]); "
        "an existing bundle there is replaced only once the new one is complete",
    )
    p.add_argument(
        "--precision",
        choices=precisions,
        default=default_precision,
        help=f"numeric precision of the programs (default: {default_precision})",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="benchmark data cache for calibration and parity (default: $XDG_CACHE_HOME/pocketclip)",
    )
    p.add_argument(
        "--parity-images",
        type=int,
        default=256,
        help="real test images (and all their captions) the parity check runs on (default: 256)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the parity check (the manifest then records that parity was not measured)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run_command(name: str, export: Callable[[], Path]) -> int:
    """Run ``export``; user errors become one line on stderr and exit status 2 (``formats.cli``)."""

    @cli_main(name, interrupted="interrupted; no bundle was changed", user_errors=USER_ERRORS)
    def run(argv: list[str] | None = None) -> int:
        out = export()
        print(f"{name}: bundle written to {out}")
        return 0

    return run()


def configure_logging(level: str) -> None:
    """Libraries stay at WARNING; ours at ``level``."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("export").setLevel(level)
    logging.getLogger("__main__").setLevel(level)  # the exporter itself, run with python -m
    logging.getLogger("compression").setLevel(max(logging.getLevelName(level), logging.WARNING))
