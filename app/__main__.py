"""`python -m app`: the photo-search app on the desktop (the same code runs packaged on Android and iOS).

    python -m app                                   # the real gallery, the offline default's model
    python -m app --gallery ~/Pictures              # your photos
    python -m app --bundle bundles/offline-executorch --data-dir /tmp/pocketclip
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from app.launch import LaunchOptions, missing_model_message, prepare_platform
from app.platform import default_model_path, detect_platform
from app.runtime_preload import preload_runtime
from formats.cli import cli_main
from formats.errors import UserError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    platform_name = detect_platform()
    p = argparse.ArgumentParser(
        prog="python -m app",
        description="Private photo search: the app indexes your gallery folders with the compressed CLIP "
        "(in the background, on this machine) and finds photos by description. Galleries are only read.",
    )
    p.add_argument("--gallery", type=Path, action="append", metavar="DIR",
                   help="a gallery folder; repeat for several (default: the folders chosen last time, else the "
                   "real gallery assets/real_gallery: photos and clip art)")
    p.add_argument("--bundle", type=Path, default=default_model_path(platform_name), metavar="DIR",
                   help="the model: an export bundle (manifest.json) or a run directory (student.json) "
                   "(default: bundles/offline-onnx, else bundles/offline-executorch if present, else runs/offline; "
                   "now %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the index and thumbnails are kept (default: $POCKETCLIP_DATA_DIR or "
                   "$XDG_DATA_HOME/pocketclip, shared with `python -m app.engine`)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the app and the engine do")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@cli_main("python -m app")
def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    message = missing_model_message(args.bundle)
    if message is not None:
        raise UserError(message)
    for folder in args.gallery or []:
        if not folder.is_dir():
            raise UserError(f"gallery {folder} is not a folder")
    options = LaunchOptions(model=args.bundle, data_dir=args.data_dir,
                            galleries=[str(g) for g in args.gallery] if args.gallery else None, started=started)
    preload_runtime(args.bundle)  # before Kivy's window: see app/runtime_preload.py
    prepare_platform(detect_platform())  # on the main thread, before any worker thread exists
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # our arguments are not Kivy's
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # Kivy logs through the logging set up above
    if not args.verbose:
        os.environ.setdefault("KCFG_KIVY_LOG_LEVEL", "warning")  # Kivy's start-up report is INFO
    from app.main_app import PocketClipApp, configure_kivy  # Kivy: only once the arguments are known good

    configure_kivy()
    PocketClipApp(options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
