"""The ablation command: variants reuse the full run's shared phases and differ only where ablated."""
import json

from compression.ablation import VARIANTS, main, slug


def test_ablation_reuses_shared_phases(tmp_path, tiny_overrides, capsys):
    args = ["--out", str(tmp_path / "abl"), "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--variants", "w/o KD", "w/o HN"]
    for o in tiny_overrides:
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    for row in ("full recipe", "w/o KD", "w/o HN"):
        assert f"| {row} |" in out
    full = json.loads((tmp_path / "runs" / "offline" / "state.json").read_text())
    no_kd = json.loads((tmp_path / "abl" / slug("w/o KD") / "state.json").read_text())
    shared = VARIANTS["w/o KD"][1]
    # shared phases were copied, not re-run: their recorded durations are the full run's
    assert {k: no_kd["seconds"][k] for k in shared} == {k: full["seconds"][k] for k in shared}
    assert "kd_loss" in full["metrics"]["losses"]["stage2-image"]
    assert "kd_loss" not in no_kd["metrics"]["losses"]["stage2-image"]
    results = json.loads((tmp_path / "abl" / "results.json").read_text())
    assert set(results) == {"full recipe", "w/o KD", "w/o HN"}


def test_every_variant_changes_the_config():
    from compression.config import config_digest, load_config

    digests = {config_digest(load_config(None, o)) for o, _ in VARIANTS.values()}
    assert len(digests) == len(VARIANTS)
