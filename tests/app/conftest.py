"""Fixtures for the UI tests: an X display (Xvfb), Kivy configured for a test process, and the real app running.

A Kivy window can be opened once per process, so one app runs for the whole session
(``running_app``); tests drive it in order, as a person would, through its widgets. Frames are
advanced with ``EventLoop.idle()`` until a condition holds, and screenshots go to
``artifacts/screenshots/``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    """Xvfb on a free display number (it picks one and writes it to the pipe we give it)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb started but reported no display number")
    return proc, f":{number}"


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """$DISPLAY if set (e.g. under `xvfb-run`), else a private Xvfb for the session; skips without either."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("UI tests need an X display: install Xvfb (apt-get install -y xvfb) or run under xvfb-run")
    proc, display = _start_xvfb()
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.environ.pop("DISPLAY", None)


@pytest.fixture(scope="session")
def kivy_environment(tmp_path_factory, x_display) -> Path:
    """Environment Kivy reads at import: no argv parsing, a private config home, SDL2, Python logging."""
    home = tmp_path_factory.mktemp("kivy-home")
    os.environ.update({"KIVY_NO_ARGS": "1", "KIVY_HOME": str(home), "KIVY_WINDOW": "sdl2",
                       "KIVY_LOG_MODE": "PYTHON", "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1"})
    return home


class AppDriver:
    """The running app and the means to advance it: frames, waiting for a condition, screenshots."""

    def __init__(self, app):
        from kivy.base import EventLoop

        self.app = app
        self._event_loop = EventLoop
        self.frame_gaps: list[float] = []  # seconds between consecutive frames, to show the UI never blocked

    def frame(self) -> None:
        start = time.perf_counter()
        self._event_loop.idle()
        self.frame_gaps.append(time.perf_counter() - start)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition",
                 on_frame: Callable[[], None] | None = None) -> None:
        """Advance frames until ``condition()`` holds; fail after ``timeout`` seconds, naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            self.frame()
            if on_frame is not None:
                on_frame()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.005)

    def settle(self, seconds: float = 0.3) -> None:
        """Let a few frames run (layouts, textures) without waiting on anything in particular."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.frame()
            time.sleep(0.01)

    def screenshot(self, name: str) -> Path:
        """Save the window as ``artifacts/screenshots/<name>.png`` and return the path."""
        from kivy.core.window import Window

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.settle(0.2)
        written = Path(Window.screenshot(name=str(SCREENSHOTS / f"{name}-tmp.png")))  # Kivy numbers the file
        target = SCREENSHOTS / f"{name}.png"
        os.replace(written, target)
        return target

    def tap(self, button) -> None:
        """Press and release a button as a touch would (its on_press/on_release handlers run)."""
        button.dispatch("on_press")
        button.dispatch("on_release")
        self.frame()


@pytest.fixture(scope="session")
def ui_gallery(tiny_run, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The tiny run's test split written as a gallery of PNGs; returns (folder, Karpathy entries)."""
    import json

    from compression.data.loading import load_datasets
    from compression.data.synthetic import write_split_as_folder

    cfg, root, _ = tiny_run
    out = tmp_path_factory.mktemp("ui-gallery")
    test = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False).test
    json_path = write_split_as_folder(test, out)
    return out / "images", json.loads(json_path.read_text())["images"]


@pytest.fixture(scope="session")
def running_app(kivy_environment, tiny_run, tmp_path_factory) -> Iterator[AppDriver]:
    """The real PocketClipApp with the tiny run's student, started with no gallery chosen.

    Indexing is slowed (batches of 4, 0.15 s pause after each) so that progress can be watched.
    """
    from app.launch import LaunchOptions
    from app.runtime_preload import preload_runtime

    _, root, _ = tiny_run
    model = root / "runs" / "tiny"
    preload_runtime(model)  # before the window, as `python -m app` does
    from app.main_app import PocketClipApp, configure_kivy

    configure_kivy()
    data_dir = tmp_path_factory.mktemp("ui-data")
    app = PocketClipApp(LaunchOptions(model=model, data_dir=data_dir, galleries=[], batch_size=4, throttle_s=0.15))
    app._run_prepare()  # what App.run() does before its loop: build, open the window, on_start
    driver = AppDriver(app)
    try:
        yield driver
    finally:
        app.stop()
        driver.settle(0.1)
