"""iOS: the compiled Core ML model is cached in the sandbox's Library/Caches, never inside the bundle
(which ships inside the signed, read-only .app). pyobjus is replaced by a stand-in that plays Core ML's
part: compileModelAtURL writes a compiled model to a temporary folder and returns its URL."""
from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path
from typing import ClassVar

from app.engine.runtimes import ios
from app.engine.runtimes.bundle import read_bundle


class _Str:
    def __init__(self, text: str):
        self._text = text

    def UTF8String(self) -> bytes:
        return self._text.encode()


class _URL:
    def __init__(self, path: str):
        self.path = _Str(path)


class _CoreML:
    """MLModel / NSURL as the runtime calls them; records what was compiled and opened."""

    compiled: ClassVar[list[str]] = []
    opened: ClassVar[list[str]] = []

    @classmethod
    def fileURLWithPath_(cls, path):
        return _URL(path)

    @classmethod
    def compileModelAtURL_error_(cls, url, error):
        out = Path(tempfile.mkdtemp()) / "model.mlmodelc"
        out.mkdir()
        (out / "coremldata.bin").write_bytes(b"compiled " + url.path.UTF8String())
        cls.compiled.append(url.path.UTF8String().decode())
        return _URL(str(out))

    @classmethod
    def modelWithContentsOfURL_error_(cls, url, error):
        path = url.path.UTF8String().decode()
        cls.opened.append(path)
        return object() if Path(path, "coremldata.bin").is_file() else None


def _fake_pyobjus(monkeypatch) -> None:
    pyobjus = types.ModuleType("pyobjus")
    pyobjus.autoclass = lambda name: _CoreML
    pyobjus.objc_str = lambda text: text
    dylib = types.ModuleType("pyobjus.dylib_manager")
    dylib.load_framework = lambda path: None
    monkeypatch.setitem(sys.modules, "pyobjus", pyobjus)
    monkeypatch.setitem(sys.modules, "pyobjus.dylib_manager", dylib)


def test_compiled_models_go_to_library_caches_not_into_the_bundle(fake_bundle, tmp_path, monkeypatch):
    home = tmp_path / "sandbox"
    monkeypatch.setenv("HOME", str(home))
    _fake_pyobjus(monkeypatch)
    _CoreML.compiled, _CoreML.opened = [], []
    before = sorted(p.relative_to(fake_bundle) for p in fake_bundle.rglob("*"))
    info = read_bundle(fake_bundle)
    enc = ios.IOSCoreMLEncoders(info)
    caches = home / "Library" / "Caches"
    assert sorted(p.relative_to(fake_bundle) for p in fake_bundle.rglob("*")) == before  # nothing written there
    assert len(_CoreML.compiled) == 2 and all(Path(p).is_relative_to(caches) for p in _CoreML.opened)
    # a second start opens the cached compiled models without compiling again
    ios.IOSCoreMLEncoders(info)
    assert len(_CoreML.compiled) == 2 and len(_CoreML.opened) == 4
    enc.close()
