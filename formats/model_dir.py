"""One answer to "what is at --model": a run directory, an export bundle, or a folder of bundles.

The engine's loader, the app's settings and startup, and the benchmarks all ask here, so that a
folder of bundles means the same bundle everywhere: Core ML first on Apple platforms, elsewhere ONNX
(starts fastest on a desktop), then ExecuTorch, Core ML last. A loader that cannot run the first
candidate moves on to the next, in this order.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

from formats.errors import FormatError
from formats.manifest import MANIFEST
from formats.run_card import RUN_CARD

RUN_CONFIG = RUN_CARD  # a run directory's model card (formats.run_card)

RUN, BUNDLE, BUNDLES = "run", "bundle", "bundles"


class ModelNotFoundError(FormatError):
    """Nothing usable at the path given as the model; the message says what was expected."""


def bundle_preference(backend: str, system: str | None = None) -> int:
    """Lower first: Core ML on Apple platforms, elsewhere ONNX, then the rest, Core ML last."""
    if (system or platform.system()) == "Darwin":
        return 0 if backend == "coreml" else 1
    return {"onnx": 0, "coreml": 2}.get(backend, 1)


def _backend_of(bundle: Path) -> str | None:
    """The manifest's backend, or None when the manifest cannot be read (the loader names why)."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    backend = manifest.get("backend", "") if isinstance(manifest, dict) else None
    return backend if isinstance(backend, str) else None


@dataclass(frozen=True)
class ModelDir:
    """What is at a model path. ``candidates``: the bundles to try, best first (empty for a run)."""

    path: Path
    kind: str  # RUN, BUNDLE or BUNDLES
    candidates: tuple[Path, ...] = ()
    backends: tuple[str, ...] = ()  # the manifest backend of each candidate ("" if unreadable)

    @property
    def root(self) -> Path:
        """The directory that holds the model: the run or bundle itself, or a folder's preferred bundle."""
        return self.candidates[0] if self.kind == BUNDLES else self.path

    @property
    def backend(self) -> str:
        """"torch" for a run directory, else the (preferred) bundle's manifest backend."""
        return "torch" if self.kind == RUN else self.backends[0]


def resolve_model(path: str | Path, system: str | None = None) -> ModelDir:
    """Say what is at ``path``. Raises ModelNotFoundError when it is none of a run directory
    (student.json), a bundle (manifest.json) or a folder holding bundles.

    ``system``: ``platform.system()`` unless told (the bundle order depends on it).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model {path} not found: pass --model with a run directory (python -m compression.run) "
            f"or a bundle (python -m export.executorch)"
        )
    if (path / RUN_CONFIG).is_file():
        return ModelDir(path, RUN)
    if (path / MANIFEST).is_file():
        return ModelDir(path, BUNDLE, (path,), (_backend_of(path) or "",))
    found = []
    for sub in sorted(p for p in path.iterdir() if (p / MANIFEST).is_file()):
        backend = _backend_of(sub)
        if backend is not None:
            found.append((bundle_preference(backend, system), sub, backend))
    if not found:
        raise ModelNotFoundError(f"{path} is neither a run directory ({RUN_CONFIG}) nor a bundle ({MANIFEST})")
    found.sort(key=lambda t: t[:2])
    return ModelDir(path, BUNDLES, tuple(s for _, s, _ in found), tuple(b for _, _, b in found))
