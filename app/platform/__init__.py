"""Which platform the app runs on, and the platform's bridge (permissions, gallery roots, data folders).

The selection logic here is plain Python and tested on the desktop; each bridge module
(``android``, ``ios``, ``desktop``) is imported only on its own platform, because the Android one
needs pyjnius and python-for-android's ``android`` module, and the iOS one pyobjus.
"""
from __future__ import annotations

import importlib
import logging
import os
import platform as _platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from app.engine.runtimes import Encoders

logger = logging.getLogger(__name__)

PlatformName = Literal["android", "ios", "desktop"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding app/, export/, bundles/
# the desktop's default gallery: real photos and clip art for the offline default model (make run)...
REAL_GALLERY = PROJECT_ROOT / "assets" / "real_gallery"
# ...else the synthetic benchmark's test photos, which only the synthetic model (make run-synthetic) knows
SAMPLE_GALLERY = PROJECT_ROOT / "assets" / "sample_gallery"


class PlatformBridge(Protocol):
    """What each ``app.platform.<name>`` module provides."""

    def request_photo_access(self, on_result: Callable[[bool], None]) -> None:
        """Ask for permission to read photos (if the platform needs it); ``on_result(granted)`` later."""

    def default_gallery_roots(self) -> list[str]:
        """The folders holding the device's photos (after access was granted)."""


def detect_platform(sys_platform: str | None = None, environ: Mapping[str, str] | None = None,
                    system: str | None = None, machine: str | None = None,
                    has_android_api_level: bool | None = None) -> PlatformName:
    """"android", "ios" or "desktop", from the interpreter's facts (arguments default to this process's).

    Android: CPython's own Android build (``sys.getandroidapilevel``) or python-for-android's
    environment (``ANDROID_ARGUMENT`` / ``ANDROID_PRIVATE``). iOS: CPython 3.13+'s ``sys.platform ==
    "ios"``, or a kivy-ios build (Darwin on an iPhone/iPad machine).
    """
    sys_platform = sys.platform if sys_platform is None else sys_platform
    environ = os.environ if environ is None else environ
    system = _platform.system() if system is None else system
    if machine is None:
        machine = os.uname().machine if hasattr(os, "uname") else ""
    if has_android_api_level is None:
        has_android_api_level = hasattr(sys, "getandroidapilevel")
    if sys_platform == "android" or has_android_api_level or "ANDROID_ARGUMENT" in environ \
            or "ANDROID_PRIVATE" in environ:
        return "android"
    if sys_platform == "ios" or (system == "Darwin" and machine.startswith(("iPhone", "iPad"))):
        return "ios"
    return "desktop"


def bridge_module_name(name: PlatformName) -> str:
    """The module implementing :class:`PlatformBridge` on platform ``name``."""
    if name not in ("android", "ios", "desktop"):
        raise ValueError(f"unknown platform {name!r}; expected 'android', 'ios' or 'desktop'")
    return f"app.platform.{name}"


def load_bridge(name: PlatformName | None = None) -> ModuleType:
    """Import the bridge of ``name`` (default: this platform). Only that platform's module is imported."""
    return importlib.import_module(bridge_module_name(name or detect_platform()))


ModelLoader = Callable[..., "Encoders"]  # (path, verify=True, threads=None) -> Encoders; raises ModelLoadError


def model_loader(name: PlatformName) -> ModelLoader:
    """What opens a model on platform ``name``: on the desktop ``app.desktop.models.load_model`` (run
    directories through PyTorch, and bundles); on a phone the engine's bundle loader alone, because
    ``app.desktop`` (torch, training code) is not shipped there."""
    if name == "desktop":
        from app.desktop.models import load_model

        return load_model
    from app.engine.runtimes import load_encoders

    return load_encoders


def default_model_path(name: PlatformName, project_root: Path = PROJECT_ROOT) -> Path:
    """The model the app opens when none is given.

    iOS runs Core ML bundles (``bundles/offline-coreml``), Android the ExecuTorch bundle
    (``bundles/offline-executorch``). The desktop takes the ONNX bundle (``bundles/offline-onnx``),
    the fastest to start (no torch: bench/results/runtime_load.json), else the ExecuTorch bundle, else
    the PyTorch run directory of the offline default (``runs/offline``), which ``make run`` writes.
    """
    if name == "ios":
        return project_root / "bundles" / "offline-coreml"
    executorch = project_root / "bundles" / "offline-executorch"
    if name == "android":
        return executorch
    for bundle in (project_root / "bundles" / "offline-onnx", executorch):
        if (bundle / "manifest.json").is_file():
            return bundle
    return project_root / "runs" / "offline"


def default_data_dir(name: PlatformName, user_data_dir: str | Path | None = None, home: Path | None = None) -> Path:
    """Where the index and thumbnails live: the engine CLI's folder on the desktop (so both share one
    index), the app's private storage (Kivy's ``App.user_data_dir``) on Android. On iOS Kivy's
    ``user_data_dir`` is inside Documents, which iCloud backs up, the Files app shows, and the app
    indexes as its gallery: the index goes to the sandbox's ``Library/Application Support`` instead."""
    if name == "ios":
        return (home or Path(os.path.expanduser("~"))) / "Library" / "Application Support" / "pocketclip"
    if name == "desktop" or user_data_dir is None:
        from app.engine.data_dir import default_data_dir as engine_data_dir

        return engine_data_dir()
    return Path(user_data_dir)
