"""What can be checked of the Android and iOS packaging without their SDKs: the files parse, the
requirements cover the imports of the code each phone runs, the pins agree with pyproject.toml."""
from __future__ import annotations

import ast
import configparser
import fnmatch
import itertools
import os
import plistlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app.platform.roots import (
    READ_EXTERNAL_STORAGE,
    READ_MEDIA_IMAGES,
    READ_MEDIA_VISUAL_USER_SELECTED,
    TIRAMISU,
    UPSIDE_DOWN_CAKE,
    photo_permissions,
)

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "buildozer.spec"
IOS = REPO / "ios"

# import name -> python-for-android / kivy-ios recipe name; stdlib modules that need a recipe of their own
RECIPE_OF_IMPORT = {"kivy": "kivy", "numpy": "numpy", "PIL": "pillow", "jnius": "pyjnius", "android": "android",
                    "pyobjus": "pyobjus", "sqlite3": "sqlite3", "regex": "regex", "ftfy": "ftfy"}
# lazy imports inside functions the phone never calls (a run directory's tokenizer, writing a bundle);
# test_the_phone_code_path_imports_no_torch checks they stay unloaded; faiss: the desktop float16 kernel,
# built only after half_embeddings.faiss_available() (phones take the numpy kernel)
DESKTOP_ONLY_IMPORTS = {"compression", "open_clip", "faiss"}
# imports kivy-ios has no recipe for (regex was one: app/engine/clip_split.py replaced it)
KNOWN_IOS_GAPS: set[str] = set()
STDLIB_NEEDING_RECIPE = {"sqlite3"}
OWN_PACKAGES = {"app", "export", "formats"}
ANDROID_ONLY = {"app/platform/android.py", "app/engine/runtimes/android.py"}
IOS_ONLY = {"app/platform/ios.py", "app/engine/runtimes/ios.py"}


def read_spec() -> configparser.ConfigParser:
    """buildozer.spec as Buildozer reads it: ConfigParser, keys case-sensitive, values comma-separated lists."""
    spec = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    spec.optionxform = str  # type: ignore[assignment,method-assign]
    spec.read(SPEC)
    return spec


def spec_list(spec: configparser.ConfigParser, key: str) -> list[str]:
    return [item.strip() for item in spec.get("app", key, fallback="").split(",") if item.strip()]


def shipped_python_files(spec: configparser.ConfigParser) -> list[str]:
    """The .py files Buildozer puts in the APK (source.dir, minus excluded dirs and patterns), repo-relative."""
    root = (REPO / spec.get("app", "source.dir")).resolve()
    exclude_dirs = set(spec_list(spec, "source.exclude_dirs"))
    patterns = spec_list(spec, "source.exclude_patterns")
    assert "py" in spec_list(spec, "source.include_exts")
    out = []
    for dirpath, dirnames, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel_dir, d)) not in exclude_dirs
                       and d not in exclude_dirs and d != "__pycache__"]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if name.endswith(".py") and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                out.append(rel)
    return sorted(out)


class _Imports(ast.NodeVisitor):
    """Top-level names of every absolute import, minus those inside ``try: ... except ImportError``."""

    def __init__(self):
        self.names: set[str] = set()
        self._optional = 0

    def visit_Try(self, node: ast.Try) -> None:
        catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        optional = bool(catches & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"})
        self._optional += optional
        for child in node.body:
            self.visit(child)
        self._optional -= optional
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        if not self._optional:
            self.names.update(a.name.split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not self._optional and node.level == 0 and node.module and node.module != "__future__":
            self.names.add(node.module.split(".")[0])


def third_party_imports(files: list[str]) -> dict[str, list[str]]:
    """import name -> files importing it, for imports that are not our own packages nor plain stdlib."""
    found: dict[str, list[str]] = {}
    for rel in files:
        visitor = _Imports()
        visitor.visit(ast.parse((REPO / rel).read_text(), rel))
        for name in visitor.names:
            if name in OWN_PACKAGES | DESKTOP_ONLY_IMPORTS or (
                    name in sys.stdlib_module_names and name not in STDLIB_NEEDING_RECIPE):
                continue
            found.setdefault(name, []).append(rel)
    return found


def test_buildozer_spec_parses_and_names_the_app():
    spec = read_spec()
    assert spec.has_section("app") and spec.has_section("buildozer")
    for key in ("title", "package.name", "package.domain", "source.dir", "version", "requirements"):
        assert spec.get("app", key).strip(), key
    assert (REPO / spec.get("app", "source.dir")).resolve() == REPO


def test_android_requirements_cover_every_import_of_the_code_the_phone_runs():
    spec = read_spec()
    requirements = {r.split("==")[0] for r in spec_list(spec, "requirements")}
    files = [f for f in shipped_python_files(spec) if f not in IOS_ONLY]
    assert "app/main_app.py" in files and "app/platform/android.py" in files and "export/bundle.py" in files
    assert not any(f.startswith(("compression/", "tests/", "bench/")) for f in files)
    imports = third_party_imports(files)
    missing = {name: where for name, where in imports.items() if RECIPE_OF_IMPORT.get(name) not in requirements}
    assert not missing, f"imports without a python-for-android requirement: {missing}"
    assert "python3" in requirements
    assert "torch" not in requirements and "torch" not in imports, imports.get("torch")


def test_android_pins_match_the_desktop_versions():
    spec = read_spec()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = itertools.chain(project["dependencies"], *project["optional-dependencies"].values())
    pins = dict(p.split("==") for p in declared if "==" in p)
    requirements = dict(r.split("==") for r in spec_list(spec, "requirements") if "==" in r)
    assert requirements["kivy"] == pins["kivy"]
    gradle = spec_list(spec, "android.gradle_dependencies")
    executorch = [g for g in gradle if g.startswith("org.pytorch:executorch-android:")]
    assert len(executorch) == 1, gradle
    # the .pte programs are written by the Python exporter: the Android runtime must be the same release
    assert executorch[0].rsplit(":", 1)[1] == pins["executorch"]


def test_android_photo_permissions_match_what_the_app_requests():
    spec = read_spec()
    declared = {}
    for item in spec_list(spec, "android.permissions"):
        if item.startswith("("):
            fields = dict(f.split("=", 1) for f in item.strip("()").split(";"))
            declared[fields.pop("name")] = fields
        else:
            declared["android.permission." + item if "." not in item else item] = {}
    requested = set(photo_permissions(TIRAMISU - 1) + photo_permissions(TIRAMISU) + photo_permissions(UPSIDE_DOWN_CAKE))
    assert set(declared) == requested == {READ_MEDIA_IMAGES, READ_EXTERNAL_STORAGE, READ_MEDIA_VISUAL_USER_SELECTED}
    assert declared[READ_EXTERNAL_STORAGE] == {"maxSdkVersion": str(TIRAMISU - 1)}
    assert spec.getint("app", "android.api") >= TIRAMISU  # READ_MEDIA_IMAGES exists from API 33
    assert spec.getint("app", "android.minapi") >= 23  # the ExecuTorch AAR's minSdk
    assert set(spec_list(spec, "android.archs")) <= {"arm64-v8a", "x86_64"}  # the ABIs the AAR ships


def test_buildozer_entry_point_runs_the_app():
    main_py = REPO / "main.py"
    if not main_py.is_file():
        pytest.skip("main.py is missing at the repository root: Buildozer and kivy-ios run it; it must hold "
                    "`from app.__main__ import main` + `raise SystemExit(main())` (see app/README.md)")
    tree = ast.parse(main_py.read_text())
    assert any(isinstance(n, ast.ImportFrom) and n.module == "app.__main__" for n in ast.walk(tree))


def test_ios_plist_carries_the_photos_permission_string():
    with open(IOS / "Info.additions.plist", "rb") as f:
        plist = plistlib.load(f)
    assert len(plist["NSPhotoLibraryUsageDescription"].strip()) > 20
    assert plist["UIFileSharingEnabled"] is True and plist["LSSupportsOpeningDocumentsInPlace"] is True


def test_ios_recipe_depends_on_every_import_of_the_code_the_phone_runs():
    tree = ast.parse((IOS / "recipes" / "pocketclip" / "__init__.py").read_text())
    fields = {}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("depends", "python_depends", "pbx_frameworks", "url"):
                fields[target.id] = ast.literal_eval(node.value)
    assert fields["url"] == "src" and {"CoreML", "Photos"} <= set(fields["pbx_frameworks"])
    assert {p.name for p in (IOS / "recipes" / "pocketclip" / "src").iterdir()} >= {"pocketclip_photos.h",
                                                                                  "pocketclip_photos.m"}
    files = [f for f in shipped_python_files(read_spec()) if f not in ANDROID_ONLY]
    imports = third_party_imports(files)
    provided = set(fields["depends"]) | set(fields["python_depends"])
    missing = {n: w for n, w in imports.items() if n != "sqlite3" and RECIPE_OF_IMPORT.get(n) not in provided}
    assert set(missing) == KNOWN_IOS_GAPS, f"imports without a kivy-ios recipe: {missing}"
    assert "python3" in fields["depends"]


PROBE = """
import json, os, sys
os.environ.update(KIVY_NO_ARGS="1", KIVY_LOG_MODE="PYTHON", KIVY_NO_FILELOG="1", KIVY_HOME=sys.argv[1])
import app.main_app, app.controller, app.platform.roots, app.engine.runtimes.android
import app.screens.search, app.screens.indexing, app.screens.settings, app.screens.photo
heavy = ("torch", "executorch", "open_clip", "timm", "compression", "triton")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_the_phone_code_path_imports_no_torch(tmp_path):
    """Everything the phone imports (UI, controller, engine, Android runtime) loads no torch and no training code."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _rendered_manifest(spec: configparser.ConfigParser) -> str:
    """AndroidManifest.xml as python-for-android's sdl2 bootstrap template renders it for this spec's
    extra <application> arguments (read, escaped and passed on the command line as Buildozer does)."""
    import shlex
    import types

    import jinja2
    import pythonforandroid

    path = spec.get("app", "android.extra_manifest_application_arguments", fallback="")
    body = (REPO / path).read_text().replace('"', '\\"').replace("\n", " ").replace("\t", " ") if path else ""
    passed = shlex.split(f'--extra-manifest-application-arguments="{body}"')[0].split("=", 1)[1]
    template = Path(pythonforandroid.__file__).parent / "bootstraps" / "sdl2" / "build" / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template)))
    args = types.SimpleNamespace(
        numeric_version=1, version="0.1.0", min_sdk_version=spec.getint("app", "android.minapi"), permissions=[],
        allow_backup="false", extra_manifest_application_arguments=passed, android_apptheme="@android:style/Theme",
        window=True, android_used_libs=[], meta_data=[], android_entrypoint="org.kivy.android.PythonActivity",
        manifest_orientation="unspecified", launcher=False, activity_launch_mode="", home_app=False,
        intent_filters=None, services=[], extra_manifest_xml="", wakelock=False, billing_pubkey=None,
        backup_rules=None, extra_manifest_activity_arguments="", add_activity=[], native_services=[],
        presplash_color="#000000", sdl_orientation_hint="", service_class_name="org.kivy.android.PythonService",
        activity_class_name="org.kivy.android.PythonActivity", enable_androidx=True,
    )
    return env.get_template("AndroidManifest.tmpl.xml").render(
        args=args, android_api=spec.getint("app", "android.api"), debug=False, service=False, service_names=[],
        native_services=[], url_scheme="kivy", package=spec.get("app", "package.domain"))


def test_android_10_may_read_photos_by_path():
    """API 29's scoped storage blocks path reads of DCIM unless <application> asks for legacy storage."""
    import xml.etree.ElementTree as ET

    ns = "{http://schemas.android.com/apk/res/android}"
    app_tag = ET.fromstring(_rendered_manifest(read_spec()).encode()).find("application")
    assert app_tag is not None and app_tag.get(f"{ns}requestLegacyExternalStorage") == "true"


def test_gradle_can_fetch_the_executorch_aar():
    """python-for-android's build.gradle lists google() and jcenter(); the AAR is on Maven Central."""
    import types

    import jinja2
    import pythonforandroid

    spec = read_spec()
    template = Path(pythonforandroid.__file__).parent / "bootstraps" / "common" / "build" / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template)), undefined=jinja2.ChainableUndefined)
    args = types.SimpleNamespace(gradle_repositories=spec_list(spec, "android.add_gradle_repositories"))
    gradle = env.get_template("build.tmpl.gradle").render(args=args, android_api=35)
    allprojects = gradle.split("allprojects", 1)[1].split("}", 1)[0]
    assert "mavenCentral()" in allprojects


def test_buildozer_ships_every_file_of_a_bundle_with_either_tokenizer(tmp_path):
    """The APK's model is the repository's bundles/offline-executorch as Buildozer copies it (include_exts):
    a WordPiece bundle's vocab.txt must come along, or the app has no tokenizer."""
    import importlib.util

    repo = tmp_path / "repo"
    bundle = repo / "bundles" / "offline-executorch"
    bundle.mkdir(parents=True)
    (repo / "buildozer.spec").write_bytes(SPEC.read_bytes())
    (repo / "main.py").write_text("")
    names = ["manifest.json", "tokenizer.json", "vocab.txt", "bpe_simple_vocab_16e6.txt.gz",
             "student_image_xnnpack_fp32.pte", "student_text_xnnpack_fp32.pte"]
    for name in names:
        (bundle / name).write_text(name)
    spec = importlib.util.spec_from_file_location("ios_stage", IOS / "stage.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    copied = stage.buildozer_copy(tmp_path / "build", repo)
    assert sorted(p.name for p in (copied / "bundles" / "offline-executorch").iterdir()) == sorted(names)
