"""Config loading: defaults, overrides, unknown keys and bad values named in the error."""
import pytest

from compression.config import CONFIG_DIR, ConfigError, config_digest, load_config


def test_offline_default_loads():
    cfg = load_config()
    assert cfg.data.source == "synthetic"
    assert cfg.teacher.pretrained is None
    assert cfg.student.text_layers in (4, 6)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_bundled_config_is_valid(name):
    cfg = load_config(name)
    assert cfg.student.text_layers in (4, 6)


def test_paper_configs_are_the_paper_models():
    six = load_config("paper-vitb32-vits16-text6")
    four = load_config("paper-vitb32-vits16-text4")
    assert (six.teacher.model, six.teacher.pretrained) == ("ViT-B-32", "openai")
    assert six.student.image_backbone.startswith("vit_small_patch16_224")
    assert (six.student.text_layers, four.student.text_layers) == (6, 4)


def test_overrides_are_typed():
    cfg = load_config(None, ["stage2.kd_weight=0", "student.text_layers=6", "stage1.enabled=false", "eval.ks=[1, 3]"])
    assert cfg.stage2.kd_weight == 0.0 and isinstance(cfg.stage2.kd_weight, float)
    assert cfg.student.text_layers == 6
    assert cfg.stage1.enabled is False
    assert cfg.eval.ks == [1, 3]


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage2.kd_wieght=0", "unknown config key 'stage2.kd_wieght'"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("stage2.teacher.lrr=1", "unknown config key 'stage2.teacher.lrr'"),
        ("student.text_layers=four", "student.text_layers: expected an integer"),
        ("stage1.enabled=3", "stage1.enabled: expected true or false"),
        ("stage2.hard_negatives=-1", "stage2.hard_negative_pool"),
        ("stage2.student_image.batch_size=1", "stage2.student_image.batch_size"),
        ("data.source=web", "data.source"),
        ("eval.ks=[0]", "eval.ks"),
        ("stage2.kd_weight=-1", "stage2.kd_weight"),
        ("no_equals_sign", "key.path=value"),
    ],
)
def test_bad_values_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(None, [override])


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: " + str(CONFIG_DIR / "offline.yaml") + "\nstage1:\n  temprature: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'stage1.temprature'"):
        load_config(path)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found; bundled configs"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_files_source_needs_paths():
    with pytest.raises(ConfigError, match="data.paired"):
        load_config(None, ["data.source=files"])


def test_digest_changes_with_config():
    assert config_digest(load_config()) == config_digest(load_config())
    assert config_digest(load_config()) != config_digest(load_config(None, ["seed=1"]))
