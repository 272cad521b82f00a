"""Optimiser values moved into the config (AdamW betas/eps, gradient clip) leave existing configs' digests as
they were: runs resume and caches stay valid; setting one to another value changes the digest."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from compression.config import ADDED_AFTER_DIGESTS, config_digest, load_config

ADDED = {f.name for cls in (load_config("synthetic").stage2.student_image.__class__,)
         for f in dataclasses.fields(cls) if f.metadata == ADDED_AFTER_DIGESTS}


def _digest_before_the_new_fields(obj) -> str:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ADDED}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return hashlib.sha256(json.dumps(strip(dataclasses.asdict(obj)), sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", ["synthetic", "paper-vitb32-vits16-text6"])
def test_new_optimizer_fields_at_their_defaults_keep_the_digest(name):
    cfg = load_config(name)
    assert ADDED == {"adam_beta1", "adam_beta2", "adam_eps", "grad_clip_norm"}
    assert config_digest(cfg) == _digest_before_the_new_fields(cfg)
    assert config_digest(cfg.teacher) == _digest_before_the_new_fields(cfg.teacher)


def test_setting_one_changes_the_digest():
    base = load_config("synthetic")
    for override in ("stage2.student_image.adam_beta2=0.999", "stage1.image.grad_clip_norm=0"):
        assert config_digest(load_config("synthetic", [override])) != config_digest(base)
