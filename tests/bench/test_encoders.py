"""bench.encoders helpers on micro models: encoders built right, FLOPs, the length proof, ratios, report."""

import time

import pytest
import torch
from torch import nn

from bench import encoder_programs as programs
from bench import encoder_specs as spec_defs
from bench import encoder_towers as towers
from bench import encoders as enc
from bench import encoders_report as report
from compression.models.teacher import encode_text_at_length

MICRO = "synthclip-micro"  # 3 text layers, 32-token context


def _text_spec(role: str, layers: int) -> spec_defs.EncoderSpec:
    return spec_defs.EncoderSpec(
        f"{role}_{layers}", "text", role, f"{layers}-layer", text_layers=layers, teacher_model=MICRO
    )


@pytest.fixture(scope="module")
def teacher():
    return towers.build_teacher(MICRO)


@pytest.fixture(scope="module")
def sequences(teacher):
    eot = teacher.token_embedding.num_embeddings - 1
    return towers.random_token_sequences(12, teacher.context_length, eot, torch.Generator().manual_seed(0))


def test_text_student_keeps_evenly_spaced_teacher_layers(teacher):
    built = towers.build_encoder(_text_spec("student", 2), teacher)
    assert built.layer_ids == [0, 2]  # of the micro teacher's 3: first and last
    kept = built.export_module.resblocks
    for block, i in zip(kept, built.layer_ids):
        torch.testing.assert_close(block.mlp.c_fc.weight, teacher.transformer.resblocks[i].mlp.c_fc.weight)
    assert towers.architecture(built)["depth"] == 2


@pytest.mark.parametrize("role, layers", [("teacher", 3), ("student", 2)])
def test_timed_eager_encoder_computes_what_is_exported(teacher, sequences, role, layers):
    built = towers.build_encoder(_text_spec(role, layers), teacher)
    with torch.inference_mode():
        for seq in sequences[:4]:
            torch.testing.assert_close(
                built.export_module(seq), nn.functional.normalize(built.eager(seq), dim=-1)
            )
    if role == "teacher":  # the teacher's eager path is the project's encode_text_at_length itself
        with torch.inference_mode():
            torch.testing.assert_close(
                built.eager(sequences[0]), encode_text_at_length(teacher, sequences[0])
            )


def test_image_encoder_takes_the_teacher_image_size(teacher):
    built = towers.build_encoder(
        spec_defs.EncoderSpec("t_img", "image", "teacher", "micro", teacher_model=MICRO), teacher
    )
    arch = towers.architecture(built)
    assert built.image_size == 32 and arch == {
        "family": "vit",
        "tokens": (32 // 8) ** 2 + 1,
        "width": 64,
        "depth": 2,
    }


def test_random_token_sequences_end_with_eot():
    seqs = towers.random_token_sequences(50, 32, 1000, torch.Generator().manual_seed(0))
    assert all(2 <= s.shape[1] <= 32 for s in seqs)
    for s in seqs:
        assert s[0, 0] == 999 and s[0, -1] == 1000 and int(s.argmax()) == s.shape[1] - 1


def test_length_invariance_holds_for_the_causal_encoders(teacher, sequences):
    for role, layers in (("teacher", 3), ("student", 2)):
        built = towers.build_encoder(_text_spec(role, layers), teacher)
        proof = towers.length_invariance(built.eager, sequences, built.context_length)
        assert proof["matches"] and proof["sequences"] == len(sequences), proof
        assert proof["max_abs_diff"] < 1e-5 and proof["min_cos"] > 0.99999


def test_length_invariance_detects_an_encoder_that_sees_the_padding(teacher, sequences):
    built = towers.build_encoder(_text_spec("student", 2), teacher)
    broken = built.eager
    broken.attn_mask.zero_()  # no causal mask: EOT attends to the padding after it
    proof = towers.length_invariance(broken, sequences, built.context_length)
    assert not proof["matches"]
    assert proof["max_abs_diff"] > 100 * spec_defs.MATCH_ATOL and proof["min_cos"] < 0.999


def test_count_flops_counts_linear_and_attention():
    assert towers.count_flops(nn.Linear(8, 4), torch.zeros(1, 8)) == 2 * 8 * 4
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()  # would take the fused fast path uncounted
    t, d = 4, 8
    expected = 2 * t * 3 * d * d + 2 * t * d * d + 2 * (2 * t * t * d)  # in/out projections, QK^T and AV
    assert towers.count_flops(lambda x: mha(x, x, x, need_weights=False), torch.zeros(1, t, d)) == expected
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_time_group_reports_items_per_second():
    s = spec_defs.settings(quick=True)
    s = spec_defs.Settings(**{**s.__dict__, "rounds": 2, "budget_s": 0.0, "min_calls": 2})
    out = enc.time_group({"sleep": lambda x: time.sleep(0.01)}, torch.zeros(4, 1), s)["sleep"]
    assert out["rounds"] == 2 and out["calls"] == 4
    assert 4 / 0.2 < out["items_per_s"] <= 4 / 0.01  # a call takes at least 10 ms, surely less than 200


def test_quick_plan_covers_the_paper_pairs_and_says_what_it_skips(tmp_path):
    specs = [
        spec_defs.TEACHER_IMAGE,
        spec_defs.STUDENT_IMAGE,
        *spec_defs.CANDIDATE_IMAGES,
        spec_defs.TEACHER_TEXT,
        *spec_defs.STUDENT_TEXTS,
    ]
    quick = programs.export_jobs(specs, spec_defs.settings(quick=True), tmp_path)
    assert sorted(j.name for j in quick) == sorted(
        [
            "teacher_image_xnnpack_fp32_b1",
            "vit_small_patch16_224_xnnpack_fp32_b1",
            "teacher_text_xnnpack_fp32_b1",
            "student_text_6_xnnpack_fp32_b1",
        ]
    )
    assert quick[0].spec.role == "teacher" and all(j.path.parent == tmp_path for j in quick)
    skipped = " ".join(enc.skipped_parts(spec_defs.settings(quick=True)))
    assert "int8" in skipped and "candidate" in skipped and "4-layer" in skipped

    full_settings = spec_defs.settings(quick=False)
    full = programs.export_jobs(specs, full_settings, tmp_path)
    assert enc.skipped_parts(full_settings) == []
    assert (
        len(full) == (2 + len(spec_defs.CANDIDATE_IMAGES)) * 4 + 3 * 2
    )  # images: fp32/int8 x batch 1/N; text: batch 1
    assert {j.batch for j in full if j.spec.kind == "text"} == {1}
    assert full[0].precision == "int8"  # the slowest to lower go first


def _fake_result() -> dict:
    """A small result as ``run`` shapes it: teacher + two image students, teacher + one text student."""

    def image(label, role, params, gflops, tokens, width):
        return {
            "label": label,
            "kind": "image",
            "role": role,
            "params": params,
            "gflops": {"per_item": gflops},
            "architecture": {"family": "vit", "tokens": tokens, "width": width, "depth": 12},
            "disk": {"fp32_mb": params * 4e-6, "fp16_mb": params * 2e-6, "int8_mb": None},
        }

    def text(label, role, params, depth):
        return {
            "label": label,
            "kind": "text",
            "role": role,
            "params": params,
            "gflops": {"per_item": depth * 0.5},
            "architecture": {"family": "transformer", "width": 512, "depth": depth},
            "disk": {"fp32_mb": params * 4e-6, "fp16_mb": params * 2e-6, "int8_mb": params * 1e-6},
        }

    encoders = {
        "teacher_image": image("ViT-B/32 (teacher)", "teacher", 88_000_000, 8.8, 50, 768),
        "vit_small_patch16_224": image("ViT-S/16 (paper's student)", "student", 22_000_000, 9.2, 197, 384),
        "vit_small_patch32_224": image("ViT-S/32", "candidate", 22_500_000, 2.2, 50, 384),
        "teacher_text": text("12-layer text (teacher)", "teacher", 63_000_000, 12),
        "student_text_6": text("6-layer text (paper's student)", "student", 44_000_000, 6),
    }
    rates = {  # (encoder, runtime, batch, length): items/s
        ("teacher_image", "eager", 1, None): 10.0,
        ("vit_small_patch16_224", "eager", 1, None): 8.0,
        ("vit_small_patch32_224", "eager", 1, None): 30.0,
        ("teacher_image", "executorch_fp32", 1, None): 16.0,
        ("vit_small_patch16_224", "executorch_fp32", 1, None): 12.0,
        ("teacher_text", "eager", 1, 8): 100.0,
        ("student_text_6", "eager", 1, 8): 300.0,
        ("teacher_text", "eager", 1, 77): 20.0,
        ("student_text_6", "eager", 1, 77): 40.0,
    }
    measurements = [
        {"encoder": k, "runtime": r, "batch": b, "length": n, "items_per_s": v}
        for (k, r, b, n), v in rates.items()
    ]
    invariance = [
        {
            "encoder": "teacher_text",
            "runtime": "eager",
            "sequences": 100,
            "max_abs_diff": 2e-7,
            "min_cos": 0.999998,
            "matches": True,
        },
        {
            "encoder": "student_text_6",
            "runtime": "eager",
            "sequences": 100,
            "max_abs_diff": 0.3,
            "min_cos": 0.7,
            "matches": False,
        },
    ]
    return {
        "section": "encoders",
        "quick": True,
        "settings": {"text_lengths": [8, 77]},
        "threads": {"torch": 2, "xnnpack_threadpool": 2, "export_workers": 2, "cores": 2},
        "other_cpu_during_timing": {"share": 0.4, "other_cpu_s": 80.0, "wall_s": 100.0, "cores": 2},
        "weights": "random",
        "int8_calibration": "8 random inputs",
        "paper_speedup": spec_defs.PAPER_SPEEDUP,
        "notes": ["a note"],
        "skipped": ["ExecuTorch int8 programs"],
        "encoders": encoders,
        "programs": {
            "teacher_image_xnnpack_fp32_b1": {
                "encoder": "teacher_image",
                "precision": "fp32",
                "batch": 1,
                "mb": 351.3,
                "export_s": 35.0,
                "xnnpack_delegates": 89,
                "portable_operators": ["aten::any.out"],
                "vs_eager": {"max_abs_diff": 1e-7, "min_cos": 1.0},
            },
            "vit_small_patch32_224_xnnpack_fp32_b1": {
                "encoder": "vit_small_patch32_224",
                "precision": "fp32",
                "batch": 1,
                "error": "ExportError: boom",
            },
        },
        "measurements": measurements,
        "ratios": enc.speed_ratios(measurements, encoders),
        "length_invariance": invariance,
    }


def test_speed_ratios_divide_by_the_teacher_in_the_same_setting():
    ratios = {(r["student"], r["runtime"], r["length"]): r for r in _fake_result()["ratios"]}
    assert set(ratios) == {
        ("vit_small_patch16_224", "eager", None),
        ("vit_small_patch32_224", "eager", None),
        ("vit_small_patch16_224", "executorch_fp32", None),
        ("student_text_6", "eager", 8),
        ("student_text_6", "eager", 77),
    }  # no teacher row, no ratio without a teacher rate
    assert ratios[("vit_small_patch16_224", "eager", None)]["ratio"] == pytest.approx(0.8)
    assert not ratios[("vit_small_patch16_224", "eager", None)]["faster"]
    assert ratios[("vit_small_patch32_224", "eager", None)]["reaches_paper"]  # 3.0x >= 1.5x
    text8 = ratios[("student_text_6", "eager", 8)]
    assert text8["ratio"] == pytest.approx(3.0) and text8["reaches_paper"] and text8["paper"] == 2.8
    assert not ratios[("student_text_6", "eager", 77)]["reaches_paper"]  # 2.0x < 2.8x


def test_to_markdown_tables_and_findings():
    md = report.to_markdown(_fake_result())
    for heading in (
        "### Encoders at real size",
        "### Image students: speed relative to the teacher",
        "### Text at actual length vs padded to the full context",
        "### Findings",
    ):
        assert heading in md
    assert (
        "| ViT-S/16 (paper's student) | 0.96x | 0.80x | 0.75x |" in md
    )  # FLOPs ratio 8.8/9.2, eager, ET fp32
    assert "| ViT-S/32 | 4.00x | 3.00x | - |" in md
    assert "| 6-layer text (paper's student) | PyTorch eager | 1 | 3.00x | 2.00x |" in md
    assert "| 12-layer text (teacher) | PyTorch eager | 100 | 2.0e-07 | 0.999998 | yes | 5.0x |" in md
    assert "| vit_small_patch32_224_xnnpack_fp32_b1 | - | - | - | - | error: ExportError: boom |" in md
    assert (
        "ViT-S/16 (paper's student) vs the teacher: PyTorch eager 0.80x; ExecuTorch fp32 0.75x. "
        "It reaches the paper's 1.5x nowhere; it is slower than the teacher in PyTorch eager batch 1, "
        "ExecuTorch fp32 batch 1." in md
    )
    assert (
        "6-layer text (paper's student) vs the teacher: PyTorch eager 2.00x to 3.00x. "
        "It reaches the paper's 2.8x in 1 of 2 settings." in md
    )
    assert (
        "197 tokens of width 384, the teacher 50 of width 768: 9.2 vs 8.8 GFLOPs per image, "
        "1.05x the teacher's work with 0.25x its parameters." in md
    )
    assert "the teacher's text tower does 2.00x the FLOPs of the 6-layer text (paper's student): " in md
    # ExecuTorch measured one student only: no "fastest" named there
    assert "The fastest image student at batch 1: PyTorch eager ViT-S/32 (3.00x the teacher)." in md
    assert "instead of padding it to 77 makes a text encoder 5.0x to 7.5x faster at batch 1." in md
    assert "6-layer text (paper's student) in PyTorch eager does NOT give the same embedding" in md
    assert "Skipped in this run: ExecuTorch int8 programs." in md
    assert "Other processes used 40% of the 2 cores during these 100 s: the machine was shared" in md


def test_plot_writes_the_pngs(tmp_path):
    paths = report.plot(_fake_result(), tmp_path)
    assert [p.name for p in paths] == ["encoders_images.png", "encoders_texts.png", "encoders_ratios.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_build_all_leaves_out_a_failing_candidate_but_not_a_failing_student():
    bogus = {"backbone": "no_such_net", "teacher_model": MICRO}
    specs = [_text_spec("teacher", 3), spec_defs.EncoderSpec("no_such_net", "image", "candidate", "bogus", **bogus)]
    built, described = towers.build_all(specs)
    assert set(built) == {"teacher_3"} and described["teacher_3"]["params"] > 0
    assert described["no_such_net"]["error"].startswith("ConfigError: unknown image backbone 'no_such_net'")
    with pytest.raises(ValueError, match="unknown image backbone"):
        towers.build_all([spec_defs.EncoderSpec("no_such_net", "image", "student", "bogus", **bogus)])
