"""The engine is phone-shaped: no Kivy, no training code, and no torch until a PyTorch/ExecuTorch runtime is chosen."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import app.engine, app.engine.__main__
from app.engine.runtimes import android, ios
from app.engine.runtimes.bundle import read_bundle
info = read_bundle(sys.argv[1])  # manifest, sha256 of every file, preprocessing, the bundle's own BPE tokenizer
tokens = info.tokenizer.encode_query("a red circle")
heavy = ("torch", "kivy", "open_clip", "timm", "executorch", "compression.pipeline", "compression.stages",
         "compression.trainer", "compression")
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules], "tokens": tokens.tolist()}))
"""


def test_engine_and_bundle_reading_need_neither_torch_nor_training_code(fake_bundle):
    out = subprocess.run([sys.executable, "-c", PROBE, str(fake_bundle)], cwd=REPO, capture_output=True, text=True, check=False,
                         timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert len(result["tokens"][0]) == 5  # <sot> a red circle <eot>
