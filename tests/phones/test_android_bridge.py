"""The Android bridge on a real JVM: the app's entry path, from the files Buildozer ships, through real
pyjnius, against stand-ins of ExecuTorch's Java classes, with a JVMTI agent that makes any off-thread
lookup of an app class fail as it does on Android (python-for-android #2242) and records it."""
from __future__ import annotations

import subprocess
import sys

from phone_parts import check_entry_path


def test_buildozer_ships_the_phone_code_and_nothing_desktop_only(shipped_app):
    shipped = {p.relative_to(shipped_app).as_posix() for p in shipped_app.rglob("*.py")}
    assert {"main.py", "app/engine/engine.py", "app/engine/runtimes/android.py", "export/bundle.py"} <= shipped
    assert not any(p.startswith(("app/desktop/", "compression/", "tests/", "bench/")) for p in shipped)


def test_the_phone_entry_path_indexes_and_searches_through_the_bridge(shipped_app, phone_site, jvm_parts, tmp_path):
    """Python without its site-packages (-S -I), importing only the shipped files and the phone's libraries."""
    check_entry_path(sys.executable, phone_site, shipped_app, jvm_parts, tmp_path)


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
