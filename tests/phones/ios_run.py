"""The iOS app's engine path from the staged files, run as a script in a fresh process (test_ios_ship.py).

    python -S -I ios_run.py IOS_SITE STAGED GALLERY DATA_DIR [photokit]

Imports come only from STAGED (ios/stage.py's folder), IOS_SITE (kivy-ios's libraries: numpy,
Pillow, ftfy, wcwidth) and the standard library: no regex, no torch, no pyobjus. The platform is
iOS (CPython's iOS build reports sys.platform == "ios"). The controller opens the Core ML bundle
where the app looks for it: without pyobjus that must fail with one line to the UI. Then the engine
indexes and searches the gallery with the bundle's own preprocessing and tokenizer, and an encoder
standing in for Core ML (no Core ML here). Prints one JSON line. With ``photokit`` the gallery is the
platform's own: the Photos library through the PhotoKit helper's C API, here its pure-Python stand-in
(fake_photokit.py) serving GALLERY's images, registered by ``app.platform.ios.prepare``.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import time


def main() -> int:
    site, staged, gallery, data = sys.argv[1:5]
    photokit = sys.argv[5:6] == ["photokit"]
    sys.path[:0] = [staged, site]
    sys.platform = "ios"
    import numpy as np

    from app.controller import AppController
    from app.engine import SearchEngine
    from app.engine.runtimes.base import Encoders, l2_normalize
    from app.engine.runtimes.bundle import read_bundle
    from app.platform import default_model_path, detect_platform, model_loader

    platform_name = detect_platform()
    bundle = default_model_path(platform_name, project_root=__import__("pathlib").Path(staged))
    posted: queue.Queue = queue.Queue()
    failed: list[str] = []

    class Listener:
        def library_failed(self, message):
            failed.append(message)

        def __getattr__(self, name):
            return lambda *args: None

    controller = AppController(posted.put, Listener(), load_model=model_loader(platform_name))
    controller.open(bundle, data, [gallery])
    deadline = time.monotonic() + 60
    while not failed and time.monotonic() < deadline:
        try:
            posted.get(timeout=1)()
        except queue.Empty:
            pass
    controller.close()

    info = read_bundle(bundle)

    class StandInForCoreML(Encoders):
        backend, model_id, embed_dim = "stand-in", info.model_id, info.embed_dim
        preprocess, tokenizer = info.preprocess, info.tokenizer

        def encode_images(self, pixels):
            return l2_normalize(pixels.reshape(len(pixels), self.embed_dim, -1).mean(axis=2))

        def encode_tokens(self, tokens):
            return l2_normalize(np.resize(tokens.astype(np.float32), (len(tokens), self.embed_dim)))

    roots = [gallery]
    if photokit:
        sys.path.append(os.path.dirname(os.path.abspath(__file__)))
        from fake_photokit import FakePhotoKit
        from PIL import Image

        from app.platform import ios

        photos = {f"{name}-ID/L0/001": (Image.open(os.path.join(gallery, name)).convert("RGB"), 1.7e9 + i)
                  for i, name in enumerate(sorted(os.listdir(gallery)))}
        ios.prepare(FakePhotoKit(photos))
        roots = ios.default_gallery_roots()
    with SearchEngine(data + "-engine", StandInForCoreML()) as engine:
        update = engine.update(roots)
        results = engine.search_text("a red circle", 3)
    allowed = (os.path.abspath(staged) + os.sep, os.path.abspath(site) + os.sep, os.path.dirname(os.__file__))
    outside = sorted(name for name, mod in list(sys.modules.items())
                     if name != "__main__" and getattr(mod, "__file__", None)
                     and not os.path.abspath(mod.__file__).startswith(allowed))
    print(json.dumps({"platform": platform_name, "bundle": str(bundle), "failed": failed, "roots": roots,
                      "indexed": update.index.indexed, "results": [r.path for r in results],
                      "query_ids": info.tokenizer.encode_query("A red circle").tolist(),
                      "imported_from_elsewhere": outside}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
