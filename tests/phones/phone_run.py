"""The phone's entry path on a desktop JVM, run as a script in a fresh process (see test_android_bridge.py).

    python -S -I phone_run.py PHONE_SITE SHIP_DIR BUNDLE GALLERY DATA_DIR CLASSPATH AGENT LOG [mediastore [SELECTED]]

Imports come only from SHIP_DIR (the files a build copies), PHONE_SITE (the phone's libraries) and
the standard library; torch, the training code and the desktop-only libraries are not there, and
are blocked besides in case a path leaks in; pyjnius starts a JVM with the stand-in classes and
the thread-check agent; then, as the app does: the main thread prepares the platform, the
controller loads the model on its engine thread, scans and indexes on its indexer thread (with
decode workers), and answers a text search and a similar-photo search. Prints one JSON line.
With ``mediastore`` the gallery is the platform's own (``default_gallery_roots``): the APK's
MediaStoreGallery over the stand-in ContentResolver serving GALLERY (SELECTED: comma-separated ids the
user allowed, Android 14's "select photos"); photos are content URIs.
"""
from __future__ import annotations

import importlib.abc
import json
import os
import queue
import sys
import threading
import time

BLOCKED = ("torch", "torchvision", "compression", "open_clip", "timm", "executorch", "coremltools", "regex", "tqdm")


class _Block(importlib.abc.MetaPathFinder):
    """Not on the phone: these cannot be imported."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not shipped to the phone)", name=name)


def main() -> int:
    site, ship, bundle, gallery, data, classpath, agent, log = sys.argv[1:9]
    mediastore = sys.argv[9:10] == ["mediastore"]
    selected = sys.argv[10] if len(sys.argv) > 10 else ""
    sys.meta_path.insert(0, _Block())
    sys.path[:0] = [ship, site]
    os.environ["ANDROID_ARGUMENT"] = ship  # python-for-android sets it to the app's folder
    import jnius_config

    jnius_config.add_options(f"-agentpath:{agent}={log}")
    jnius_config.set_classpath(classpath)
    if mediastore:
        jnius_config.add_options(f"-Dpocketclip.standin.gallery={gallery}", f"-Dpocketclip.standin.selected={selected}")

    from app.controller import AppController
    from app.launch import prepare_platform
    from app.platform import detect_platform, model_loader

    platform_name = detect_platform()
    prepare_platform(platform_name)  # the main thread, as app/__main__.py does
    roots = [gallery]
    if mediastore:
        from app.platform import load_bridge

        roots = load_bridge(platform_name).default_gallery_roots()
    posted: queue.Queue = queue.Queue()
    events: dict[str, object] = {}

    class Listener:
        def library_opened(self, library):
            events["opened"] = library.model_description

        def library_failed(self, message):
            events["failed"] = message

        def scan_finished(self, scan):
            events["scan"] = scan.new

        def index_progress(self, progress):
            pass

        def index_finished(self, outcome):
            events["indexed"] = outcome.stats.indexed
            events["index_error"] = outcome.error

    def run_until(condition, timeout=120.0):
        deadline = time.monotonic() + timeout
        while not condition():
            try:
                posted.get(timeout=max(0.01, deadline - time.monotonic()))()
            except queue.Empty:
                return

    controller = AppController(posted.put, Listener(), batch_size=8, decode_workers=2,
                               load_model=model_loader(platform_name))
    answers: dict[str, object] = {}
    try:
        controller.open(bundle, data, roots)
        run_until(lambda: "indexed" in events or "failed" in events)
        if "indexed" in events:
            controller.search("a red circle", 3, lambda r: answers.update(search=[x.path for x in r]),
                              lambda m: answers.update(search_error=m))
            run_until(lambda: "search" in answers or "search_error" in answers)
            first = f"{roots[0]}/{(selected or '1').split(',')[0]}" if mediastore \
                else os.path.join(gallery, min(os.listdir(gallery)))
            controller.similar(first, 2, lambda r: answers.update(similar=[x.path for x in r]),
                               lambda m: answers.update(similar_error=m))
            run_until(lambda: "similar" in answers or "similar_error" in answers)
    finally:
        controller.close()
    allowed = (os.path.abspath(ship) + os.sep, os.path.abspath(site) + os.sep, os.path.dirname(os.__file__))
    outside = sorted(name for name, mod in list(sys.modules.items())
                     if name != "__main__" and getattr(mod, "__file__", None)
                     and not os.path.abspath(mod.__file__).startswith(allowed))
    loaded = sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in BLOCKED})
    print(json.dumps({"platform": platform_name, "roots": roots, **events, **answers, "imported_from_elsewhere": outside,
                      "blocked_loaded": loaded,
                      "threads": sorted({t.name.split("_")[0] for t in threading.enumerate()})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
