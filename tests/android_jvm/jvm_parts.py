"""Compiles what the Android bridge tests need, once per version of the sources (cached):
ExecuTorch's stand-in classes and the app's own Java (javac, Debian's JDK) and the thread-check
JVMTI agent (gcc against the JDK's headers)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
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
