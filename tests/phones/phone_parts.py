"""What the phone tests build: Buildozer's copy of the app, a bundle the stand-ins run, a site-packages of
the phone's libraries, and (once per version of the sources, cached) ExecuTorch's stand-in classes and
the app's own Java (javac, Debian's JDK) and the thread-check JVMTI agent (gcc against the JDK's headers)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EMBED_DIM = 16
SOURCES = sorted([*(HERE / "standins").rglob("*.java"), *(REPO / "android-src").rglob("*.java"),
                  HERE / "agent" / "threadcheck.c"])


@dataclass(frozen=True)
class JvmParts:
    classpath: Path  # compiled stand-ins + app Java classes
    agent: Path  # libthreadcheck.so


def java_home() -> Path:
    javac = shutil.which("javac")
    if javac is None:
        raise RuntimeError("javac not found: `make system-deps` installs Debian's openjdk-17-jdk-headless")
    return Path(os.path.realpath(javac)).parents[1]


def build(cache_root: Path | None = None) -> JvmParts:
    digest = hashlib.sha256()
    for src in SOURCES:
        digest.update(str(src.relative_to(REPO)).encode() + b"\0" + src.read_bytes())
    root = (cache_root or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")) / "pocketclip" / \
        "android-jvm" / digest.hexdigest()[:16]
    parts = JvmParts(root / "classes", root / "libthreadcheck.so")
    if parts.agent.is_file():
        return parts
    home = java_home()
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    (tmp / "classes").mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(tmp / "classes"), *[str(s) for s in SOURCES if s.suffix == ".java"]],
                   check=True, capture_output=True, text=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", f"-I{home / 'include'}",
                    f"-I{home / 'include' / 'linux'}", "-o", str(tmp / "libthreadcheck.so"),
                    str(HERE / "agent" / "threadcheck.c")], check=True, capture_output=True, text=True)
    try:
        tmp.rename(root)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return parts


def buildozer_copy(dest: Path) -> Path:
    """Buildozer's own copy of the app's sources for buildozer.spec (ios/stage.py's, shared with the iOS staging)."""
    return _ios_stage().buildozer_copy(dest)


def _ios_stage():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ios_stage", REPO / "ios" / "stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standin_bundle(root: Path, backend: str = "executorch-xnnpack", tokenizer: str = "bpe") -> Path:
    """An ExecuTorch bundle as export.bundle writes one, whose programs the stand-in Module can run; its tokenizer
    files open_clip's BPE merges (``bpe``) or, as the assembled student's bundles have, MiniLM's WordPiece
    vocab.txt (``wordpiece``)."""
    from export.bundle import write_manifest, write_tokenizer_files

    root.mkdir(parents=True)
    for name in ("image", "text"):
        (root / f"student_{name}_xnnpack_fp32.pte").write_text(f"STANDIN {EMBED_DIM}\n")
    ctx = 32
    if tokenizer == "wordpiece":
        tokenizer = wordpiece_files(root, ctx)
    else:
        tokenizer = write_tokenizer_files({"kind": "open_clip", "model": "synthclip-micro", "context_length": ctx},
                                          root)
    pre = {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    write_manifest(root, {
        "backend": backend, "precision": "fp32", "embedding_dim": EMBED_DIM,
        "image": {"program": "student_image_xnnpack_fp32.pte", "input": {"name": "image", "shape": [1, 3, 32, 32]},
                  "output": {"name": "embedding"}, **pre},
        "text": {"program": "student_text_xnnpack_fp32.pte", "input": {"name": "tokens", "shape": [1, "L"]},
                 "output": {"name": "embedding"}, "context_length": ctx,
                 "lengths": {"kind": "range", "min": 2, "max": ctx}},
        "tokenizer": tokenizer, "source": {"weights_sha256": "cd" * 32},
    })
    return root


def minilm_tokenizer():
    """Hugging Face's tokenizer of MiniLM (the assembled student's text tower), from the installed weights package."""
    from transformers import BertTokenizer

    from compression.models.pretrained_towers import minilm_path

    return BertTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)


def wordpiece_files(root: Path, context_length: int) -> dict:
    """MiniLM's vocab.txt + tokenizer.json in ``root``, by the writer the assembled student's exporters use."""
    from types import SimpleNamespace

    from compression.models.pretrained_towers import minilm_path
    from export.assembled import write_wordpiece_files

    meta = {"tokenizer": {"vocab": "vocab.txt", "max_length": context_length, "lowercase": True}}
    return write_wordpiece_files(SimpleNamespace(tokenizer=minilm_tokenizer()), meta, minilm_path(), root)


def site_of(names: tuple[str, ...], out: Path) -> Path:
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    for name in names:
        if (site / name).exists():
            (out / name).symlink_to(site / name)
    return out


def gallery(folder: Path, n: int = 12) -> Path:
    """``n`` small PNG photos of distinct colours."""
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        colour = ((i * 53) % 256, (i * 97) % 256, (i * 31) % 256)
        Image.new("RGB", (40 + i, 30), colour).save(folder / f"photo{i:02d}.png")
    return folder


def system_class(name: str) -> bool:
    """A JNI class name the boot class loader defines (found from any thread on Android): the JDK's classes,
    arrays of them, and arrays of a primitive type (``[B``)."""
    element = name.lstrip("[")
    if name.startswith("[") and len(element) == 1 and element in "BCDFIJSZ":
        return True
    return element.lstrip("L").startswith(("java/", "javax/", "jdk/", "sun/"))


def run_entry_path(python: str, site: Path, shipped_app: Path, parts: JvmParts, tmp_path: Path,
                   photos: Path, extra: tuple[str, ...] = ()) -> dict:
    """Run phone_run.py with ``python -S -I`` (imports: the shipped folder, ``site``, the stdlib); its JSON
    answer, after checking that no app class was looked up off the main thread (that fails on Android)."""
    log = tmp_path / "findclass.log"
    out = subprocess.run(
        [python, "-S", "-I", str(HERE / "phone_run.py"), str(site), str(shipped_app),
         str(shipped_app / "bundles" / "offline-executorch"), str(photos), str(tmp_path / "data"),
         str(parts.classpath), str(parts.agent), str(log), *extra],
        cwd=shipped_app, capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANDROID_ARGUMENT")},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    off_thread = log.read_text().splitlines() if log.exists() else []
    app_lookups = [line for line in off_thread if not system_class(line.split()[1])]
    assert app_lookups == [], f"app classes looked up off the main thread (fails on Android): {app_lookups}"
    assert result["platform"] == "android" and "failed" not in result, result
    assert result["opened"].startswith("android-executorch encoders")
    assert result["imported_from_elsewhere"] == [] and result["blocked_loaded"] == []
    return result


def check_entry_path(python: str, site: Path, shipped_app: Path, parts: JvmParts, tmp_path: Path) -> dict:
    """The app opened the bundle, indexed a folder gallery and searched through the bridge."""
    photos = gallery(tmp_path / "DCIM")
    result = run_entry_path(python, site, shipped_app, parts, tmp_path, photos)
    assert result["index_error"] is None and result["indexed"] == 12
    assert len(result["search"]) == 3 and all(Path(p).parent == photos for p in result["search"])
    assert len(result["similar"]) == 2 and str(photos / "photo00.png") not in result["similar"]
    return result


MEDIA_ROOT = "content://media/external/images/media"


def check_mediastore_entry_path(python: str, site: Path, shipped_app: Path, parts: JvmParts, tmp_path: Path,
                                selected: str = "") -> dict:
    """The app's own gallery on Android: MediaStore (the APK's MediaStoreGallery over the stand-in
    ContentResolver), content URIs as photos, images from loadThumbnail; ``selected``: Android 14's
    "select photos" (only those ids are visible)."""
    photos = gallery(tmp_path / "MediaStore")
    result = run_entry_path(python, site, shipped_app, parts, tmp_path, photos, ("mediastore", selected))
    visible = [int(i) for i in selected.split(",")] if selected else list(range(1, 13))
    assert result["roots"] == [MEDIA_ROOT]
    assert result["index_error"] is None and result["indexed"] == len(visible)
    uris = {f"{MEDIA_ROOT}/{i}" for i in visible}
    assert len(result["search"]) == min(3, len(visible)) and set(result["search"]) <= uris
    assert set(result["similar"]) <= uris - {f"{MEDIA_ROOT}/{visible[0]}"}
    return result
