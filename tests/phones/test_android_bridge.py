"""The Android bridge on a real JVM: the app's entry path, from the files Buildozer ships, through real
pyjnius, against stand-ins of ExecuTorch's Java classes, with a JVMTI agent that makes any off-thread
lookup of an app class fail as it does on Android (python-for-android #2242) and records it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from phone_parts import check_entry_path, check_mediastore_entry_path


def test_buildozer_ships_the_phone_code_and_nothing_desktop_only(shipped_app):
    shipped = {p.relative_to(shipped_app).as_posix() for p in shipped_app.rglob("*.py")}
    assert {"main.py", "app/engine/engine.py", "app/engine/runtimes/android.py", "export/bundle.py",
            "app/engine/photo_sources.py", "app/platform/mediastore.py"} <= shipped
    assert not any(p.startswith(("app/desktop/", "compression/", "tests/", "bench/")) for p in shipped)
    # the phone's gallery is its photo library: the desktop's bundled galleries (assets/) stay out of the APK
    assert not any(p.relative_to(shipped_app).as_posix().startswith("assets/") for p in shipped_app.rglob("*"))


def test_the_phone_entry_path_indexes_and_searches_through_the_bridge(shipped_app, phone_site, jvm_parts, tmp_path):
    """Python without its site-packages (-S -I), importing only the shipped files and the phone's libraries."""
    check_entry_path(sys.executable, phone_site, shipped_app, jvm_parts, tmp_path)


def test_the_phone_gallery_is_mediastore_content_uris(shipped_app, phone_site, jvm_parts, tmp_path):
    """On the phone the gallery is MediaStore: listed and loaded (system thumbnails at the model's size) by
    the APK's MediaStoreGallery from the indexer thread and its decode workers, no off-thread class lookup."""
    check_mediastore_entry_path(sys.executable, phone_site, shipped_app, jvm_parts, tmp_path)


def test_android_14_select_photos_indexes_only_the_selected(shipped_app, phone_site, jvm_parts, tmp_path):
    check_mediastore_entry_path(sys.executable, phone_site, shipped_app, jvm_parts, tmp_path, selected="2,5,7")


NEGATIVE = """
import sys, threading, jnius_config
jnius_config.add_options(f"-agentpath:{sys.argv[2]}={sys.argv[3]}")
jnius_config.set_classpath(sys.argv[1])
from jnius import autoclass
errors = []
def worker():
    try:
        autoclass("org.pytorch.executorch.EValue")
    except Exception as e:
        errors.append(str(e))
t = threading.Thread(target=worker); t.start(); t.join()
main_thread_ok = autoclass("org.pytorch.executorch.EValue") is not None
print(main_thread_ok, bool(errors) and "NoClassDefFoundError" in errors[0])
"""


def test_the_thread_check_catches_an_off_thread_lookup(jvm_parts, tmp_path):
    """The check is live: a lookup from a Python thread fails (as on Android) and is logged; the main thread's works."""
    log = tmp_path / "findclass.log"
    out = subprocess.run([sys.executable, "-c", NEGATIVE, str(jvm_parts.classpath), str(jvm_parts.agent), str(log)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
    assert "org/pytorch/executorch/EValue" in log.read_text()


MEDIASTORE_PROBE = """
import json, sys, jnius_config
classpath, gallery, sdk = sys.argv[1:4]
jnius_config.add_options(f"-Dpocketclip.standin.gallery={gallery}", f"-Dpocketclip.standin.sdk={sdk}")
jnius_config.set_classpath(classpath)
from jnius import autoclass
System = autoclass("java.lang.System")
helper = autoclass("org.pocketclip.MediaStoreGallery")(autoclass("org.kivy.android.PythonActivity").mActivity)
def answer(data):
    data = bytes(data.tostring())
    return [data[0], int.from_bytes(data[1:5], "big"), int.from_bytes(data[5:9], "big"), list(data[10:13])]
out = {"api": helper.apiLevel(), "rows": helper.list().splitlines(), "photo": answer(helper.loadRgb(1, 32)),
       "gone": answer(helper.loadRgb(99, 32))[0]}
System.setProperty("pocketclip.standin.denied", "true")
out["denied"] = helper.list()
print(json.dumps(out))
"""


def test_mediastore_gallery_thumbnail_on_api_29_and_sampled_decode_below(jvm_parts, tmp_path):
    """API 29+: ContentResolver.loadThumbnail (fits in 2x the side); API 28: decode with inSampleSize (the
    largest power of two keeping the shorter side >= the model's); a vanished id and a denied query are told."""
    from PIL import Image

    gallery = tmp_path / "g"
    gallery.mkdir()
    Image.new("RGB", (200, 100), (250, 10, 20)).save(gallery / "a.png")
    seen = {}
    for sdk in (34, 28):
        out = subprocess.run([sys.executable, "-c", MEDIASTORE_PROBE, str(jvm_parts.classpath), str(gallery), str(sdk)],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        seen[sdk] = json.loads(out.stdout.strip().splitlines()[-1])
    for sdk, size in ((34, [64, 32]), (28, [100, 50])):
        result = seen[sdk]
        assert result["api"] == sdk and result["denied"] is None and result["gone"] == 1
        assert [r.split("\t")[0::3] for r in result["rows"]] == [["1", "image/png"]]
        assert result["photo"] == [0, *size, [250, 10, 20]]


PRIMITIVE_ARRAY = """
import json, sys, threading, jnius_config
jnius_config.add_options(f"-agentpath:{sys.argv[2]}={sys.argv[3]}")
jnius_config.set_classpath(sys.argv[1])
from jnius import find_javaclass  # JNI FindClass with the name given
found = {}
def worker():
    for name in ("[B", "[[I", "[Ljava/lang/String;", "[Lorg/pytorch/executorch/EValue;"):
        try:
            found[name] = find_javaclass(name) is not None
        except Exception:
            found[name] = False
t = threading.Thread(target=worker); t.start(); t.join()
print(json.dumps(found))
"""


def test_the_thread_check_lets_primitive_arrays_through(jvm_parts, tmp_path):
    """Android's boot class loader defines the primitive-array classes, so FindClass("[B") works on any
    thread there; the check failed it (the desktop JDK's AWT code, which the stand-in ContentResolver's
    ImageIO loads on a decode worker, looks "[B" up). Arrays of app classes still fail off the main thread."""
    log = tmp_path / "findclass.log"
    out = subprocess.run([sys.executable, "-c", PRIMITIVE_ARRAY, str(jvm_parts.classpath), str(jvm_parts.agent), str(log)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "[B": True, "[[I": True, "[Ljava/lang/String;": True, "[Lorg/pytorch/executorch/EValue;": False}


PERMISSION_CHANGE = """
import json, sys, jnius_config
classpath, gallery, data = sys.argv[1:4]
jnius_config.add_options(f"-Dpocketclip.standin.gallery={gallery}")
jnius_config.set_classpath(classpath)
import numpy as np
from jnius import autoclass
from app.engine import photo_sources
from app.engine.decode import ImagePreprocess
from app.engine.engine import SearchEngine
from app.engine.runtimes.base import Encoders, l2_normalize
from app.platform.mediastore import MediaStoreSource

System = autoclass("java.lang.System")
source = MediaStoreSource(autoclass("org.pocketclip.MediaStoreGallery")(autoclass("org.kivy.android.PythonActivity").mActivity))
photo_sources.register(source)

class Mean(Encoders):
    backend, model_id, embed_dim, image_batch_size = "mean", "m", 3, 4
    preprocess = ImagePreprocess(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    def encode_images(self, pixels):
        return l2_normalize(pixels.mean(axis=(2, 3)) + 3.0)
    def encode_tokens(self, tokens):
        return l2_normalize(np.ones((len(tokens), 3), np.float32))

out = {}
with SearchEngine(data, Mean()) as engine:
    out["first"] = engine.update([source.root]).index.indexed
    System.setProperty("pocketclip.standin.selected", "999")  # "select photos" with none selected
    scan = engine.scan([source.root])
    out["none_selected"] = [len(scan.plan.deleted), scan.plan.kept_roots, engine.stats().photos]
    System.setProperty("pocketclip.standin.denied", "true")  # access revoked: the query throws
    scan = engine.scan([source.root])
    out["denied"] = [len(scan.plan.deleted), scan.report.unavailable, engine.stats().photos]
    System.setProperty("pocketclip.standin.denied", "false")
    System.setProperty("pocketclip.standin.selected", "")
    scan = engine.scan([source.root])
    out["back"] = [len(scan.plan.new), scan.plan.unchanged]
print(json.dumps(out))
"""


def test_a_permission_change_that_hides_every_photo_keeps_the_index(jvm_parts, tmp_path):
    """Through the APK's MediaStoreGallery: "select photos" with none selected lists nothing, revoked access
    makes the query fail; neither wipes the index, and full access back finds every photo unchanged."""
    from phone_parts import gallery

    photos = gallery(tmp_path / "MediaStore", n=5)
    out = subprocess.run([sys.executable, "-c", PERMISSION_CHANGE, str(jvm_parts.classpath), str(photos),
                          str(tmp_path / "data")], capture_output=True, text=True, timeout=120, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    root = "content://media/external/images/media"
    assert result == {"first": 5, "none_selected": [0, [root], 5], "denied": [0, [root], 5], "back": [0, 5]}
