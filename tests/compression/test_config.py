"""Config loading: defaults, overrides, unknown keys and bad values named in the error."""
import pytest

from compression.config import CONFIG_DIR, ConfigError, config_digest, load_config


def test_the_open_clip_default_is_the_synthetic_benchmark():
    cfg = load_config()
    assert cfg.data.source == "synthetic" and cfg.name == "synthetic"
    assert cfg.teacher.pretrained is None
    assert cfg.student.text_layers in (4, 6)


def test_the_offline_default_is_the_clip_art_model_in_runs_offline():
    """`python -m compression.run` with no arguments trains real pictures (issue 15), not coloured shapes."""
    from compression.clipart_pipeline import load_clipart_config
    from compression.config import RUN_DEFAULT_CONFIG
    from compression.run import pipeline_of

    assert pipeline_of(None) == "clipart"
    default = load_clipart_config(RUN_DEFAULT_CONFIG)
    assert default.name == "offline"
    named = load_clipart_config("clipart")
    named.name = "offline"
    assert default == named  # the same values as --config clipart
    with pytest.raises(ConfigError, match="'clipart' pipeline"):
        load_config(RUN_DEFAULT_CONFIG)


@pytest.mark.parametrize(("override", "named"), [("teacher.conse_weight=1.5", "teacher.conse_weight"),
                                                  ("teacher.conse_weight=0", "teacher.conse_weight"),
                                                  ("stage1_views=-1", "stage1_views"),
                                                  ("stage1_synthetic=-5", "stage1_synthetic")])
def test_clip_art_config_refuses_channel_and_stage1_values_out_of_range(override, named):
    """A weight of 1.5 would have shipped no ConSE channel without a word; negative counts made no sense."""
    from compression.clipart_pipeline import load_clipart_config

    with pytest.raises(ConfigError, match=named):
        load_clipart_config("clipart", [override])
    assert load_clipart_config("clipart", ["teacher.conse_weight=0.6"]).teacher.conse_weight == 0.6


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_bundled_config_is_valid(name):
    from compression.run import pipeline_of

    if pipeline_of(name) == "clipart":  # the assembled teacher -> MoTIS student pipeline has its own schema
        from compression.clipart_pipeline import load_clipart_config

        assert load_clipart_config(name).student_text_layers == 3
        return
    cfg = load_config(name)
    assert cfg.student.text_layers in (4, 6)


def test_paper_configs_are_the_paper_models():
    six = load_config("paper-vitb32-vits16-text6")
    four = load_config("paper-vitb32-vits16-text4")
    assert (six.teacher.model, six.teacher.pretrained) == ("ViT-B-32-quickgelu", "openai")
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
    path.write_text("base: " + str(CONFIG_DIR / "synthetic.yaml") + "\nstage1:\n  temprature: 0.1\n")
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


def test_paper_configs_have_the_papers_values():
    """MoTIS §4.1: stage 1 one epoch, batch 84; stage 2 five epochs, batch 96; both lr 3e-4, wd 0.1,
    cosine with 10k warm-up steps; eq. 1 sums the two InfoNCE directions."""
    for name in ("paper-vitb32-vits16-text6", "paper-vitb32-vits16-text4", "paper-vitb32-vits32-text6", "paper-vitb32-mnv4m-text6"):
        cfg = load_config(name)
        for opt in (cfg.stage1.image, cfg.stage1.text):
            assert (opt.epochs, opt.batch_size, opt.lr, opt.weight_decay, opt.warmup_steps) == (1, 84, 3e-4, 0.1, 10000)
        for opt in (cfg.stage2.student_image, cfg.stage2.student_text):
            assert (opt.epochs, opt.batch_size, opt.lr, opt.weight_decay, opt.warmup_steps) == (5, 96, 3e-4, 0.1, 10000)
        assert cfg.stage2.epoch_over == "captions" and cfg.stage2.infonce_direction_weight == 1.0
        assert cfg.stage2.select_best and cfg.teacher.model == "ViT-B-32-quickgelu"
        # with COCO's Karpathy train+restval (113,287 images, 566,747 captions) the warm-up fits in the run
        # only when an epoch is over captions
        steps = cfg.stage2.student_image.epochs * -(-566_747 // cfg.stage2.student_image.batch_size)
        assert cfg.stage2.student_image.warmup_steps < steps
        assert cfg.stage2.student_image.warmup_steps > cfg.stage2.student_image.epochs * -(-113_287 // 96)


def test_faster_students_are_the_papers_recipe_with_another_backbone():
    base = config_digest(load_config("paper-vitb32-vits16-text6").stage2)
    for name, backbone in (("paper-vitb32-vits32-text6", "vit_small_patch32_224"), ("paper-vitb32-mnv4m-text6", "mobilenetv4_conv_medium")):
        cfg = load_config(name)
        assert cfg.student.image_backbone.startswith(backbone) and cfg.student.image_pretrained is True
        assert config_digest(cfg.stage2) == base
