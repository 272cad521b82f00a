"""What the app is launched with (no Kivy): the model, the data directory, the gallery folders."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.model_info import is_model_dir

logger = logging.getLogger(__name__)


@dataclass
class LaunchOptions:
    model: Path
    data_dir: Path | None = None  # None: the platform's default (see app.platform.default_data_dir)
    galleries: list[str] | None = None  # None: the saved choice, else the platform's default gallery
    batch_size: int | None = None  # photos per indexing batch (None: the runtime's preference)
    throttle_s: float = 0.0  # pause after each indexing batch
    started: float = field(default_factory=time.perf_counter)  # when the launch began, for the cold-start time


def prepare_platform(platform_name: str) -> None:
    """What must happen on the main thread before the app starts its worker threads.

    Android: the engine's Java classes are looked up here (app/engine/runtimes/android.py explains why),
    and the MediaStore helper is made and registered as the gallery (app/platform/android.py).
    """
    if platform_name == "android":
        from app.engine.runtimes.android import resolve_java_classes
        from app.platform.android import prepare

        resolve_java_classes()
        prepare()
    elif platform_name == "ios":
        from app.platform.ios import prepare as prepare_ios

        prepare_ios()  # the Photos library as the gallery (app/platform/photokit.py)


def missing_model_message(model: Path) -> str | None:
    """A one-line explanation when ``model`` cannot be a model, else None."""
    if is_model_dir(model):
        return None
    return (f"no model at {model}: run `make run` first (it trains the offline default into runs/offline; "
            f"`python -m export.executorch` then writes bundles/offline-executorch), or pass --bundle DIR")
