"""bench.assembled_speed on a tiny assembled teacher and student: the teacher goes through the student's export
wrappers (torch.export equals eager), its XNNPACK programs equal the eager teacher, and ``--runtime executorch``
writes the speed-up JSON (reusing the programs in ``--keep``). Lowering takes minutes here even for tiny
models (mostly Python passes), so the ExecuTorch tests are ``slow``."""
import json

import pytest
import timm
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from bench import assembled_speed
from compression.models.assembled import AssembledTeacher, SharedEncoder, SharedEncoderConfig
from compression.models.assembled_student import AssembledStudentConfig, student_from_teacher
from compression.models.pretrained_towers import SentenceEncoder, minilm_path
from export.assembled import (
    AssembledImageForExport,
    AssembledTextForExport,
    text_dynamic_shapes,
    text_example,
)

SIZE = {"teacher": 96, "student": 64}  # test_efficientnet's stride 32: 3x3 and 2x2 feature maps


def tiny_pair() -> assembled_speed.ModelPair:
    """A 2-layer 32-wide BERT with MiniLM's vocabulary, timm's test_efficientnet towers, untrained."""
    torch.manual_seed(0)
    text = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64)).eval()
    tokenizer = BertTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    shared = SharedEncoder(SharedEncoderConfig(image_dim=256, text_dim=32, width=32, layers=2, heads=2, embed_dim=16))
    teacher = AssembledTeacher(timm.create_model("test_efficientnet"), SentenceEncoder(text, tokenizer), shared,
                               assembled_speed.conse_head(32)).eval()  # with the ConSE channel, as shipped
    student = student_from_teacher(teacher, timm.create_model("test_efficientnet"),
                                   AssembledStudentConfig(text_layers=1, shared_layers=1)).eval()
    student.conse = assembled_speed.conse_head(32)
    return assembled_speed.ModelPair({"teacher": teacher, "student": student}, SIZE, "tiny, untrained")


def test_teacher_exports_through_the_students_wrappers_and_equals_eager():
    teacher = tiny_pair().models["teacher"]
    image = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ids = teacher.tokenize(["a red apple on a table", "boat"])
    image_prog = torch.export.export(AssembledImageForExport(teacher).eval(), (image,))
    text_prog = torch.export.export(AssembledTextForExport(teacher).eval(), text_example(teacher, 2),
                                    dynamic_shapes=text_dynamic_shapes(64))
    with torch.no_grad():
        torch.testing.assert_close(image_prog.module()(image), teacher.encode_image(image, normalize=True))
        want = teacher.encode_text(ids, normalize=True)
        torch.testing.assert_close(text_prog.module()(ids), want)
        padded = torch.nn.functional.pad(ids, (0, 20 - ids.shape[1]))  # another length; [PAD] after [SEP] is masked
        torch.testing.assert_close(text_prog.module()(padded), want)


def test_time_in_turns_runs_every_call_in_turn_after_the_warmup():
    seen = []
    times = assembled_speed.time_in_turns({"a": lambda: seen.append("a"), "b": lambda: seen.append("b")}, 1, 3)
    assert seen == ["a", "b"] * 4 and [len(t) for t in times.values()] == [3, 3]
    row = assembled_speed.speed_row({"teacher image": [0.4, 0.2, 0.3], "student image": [0.1, 0.2, 0.1],
                                     "teacher text": [0.02], "student text": [0.01]}, tokens=7)
    assert row["image_ms"]["speedup"] == pytest.approx(2.0) and row["image_ms"]["speedup_median"] == pytest.approx(3.0)
    assert row["text_ms"]["teacher"] == pytest.approx(20.0) and row["text_ms"]["tokens"] == 7


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One ``--runtime executorch`` run at batch 2 on the tiny pair: (its JSON, the pair, the .pte folder)."""
    root = tmp_path_factory.mktemp("assembled-speed")
    pair = tiny_pair()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(assembled_speed, "build_models", lambda: pair)
        argv = ["--runtime", "executorch", "--batches", "2", "--repeats", "2", "--warmup", "1",
                "--keep", str(root / "pte"), "--out", str(root / "speed.json")]
        assert assembled_speed.main(argv) == 0
    return json.loads((root / "speed.json").read_text()), pair, root / "pte"


def _load(path):
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path).load_method("forward")


@pytest.mark.slow  # the bench_run fixture lowers 4 tiny programs: about 2.5 min on two busy cores
def test_teacher_programs_give_the_eager_teachers_embeddings(bench_run):
    _, pair, pte = bench_run
    teacher = pair.models["teacher"]
    image = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ids = teacher.tokenize(["a red apple on a table", "boat"])
    with torch.no_grad():
        want_img, want_txt = teacher.encode_image(image, normalize=True), teacher.encode_text(ids, normalize=True)
    got_img = _load(pte / "teacher_image_xnnpack_fp32_b2.pte").execute([image])[0]
    text = _load(pte / "teacher_text_xnnpack_fp32_b2.pte")
    got_txt = text.execute([ids])[0]
    padded = torch.nn.functional.pad(ids, (0, 20 - ids.shape[1]))  # another length; [PAD] after [SEP] is masked
    torch.testing.assert_close(got_img, want_img, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_txt, want_txt, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text.execute([padded])[0], want_txt, atol=1e-5, rtol=1e-4)
    assert min(bench_run[0]["parity_cos_min"]["batch 2"].values()) >= 0.99999


@pytest.mark.slow  # shares bench_run
def test_executorch_run_writes_the_speedups_and_reuses_kept_programs(bench_run, monkeypatch, tmp_path, capsys):
    result, pair, pte = bench_run
    row = result["rows"]["batch 2"]
    for tower in ("image", "text"):
        m = row[f"{tower}_ms"]
        assert m["speedup"] == pytest.approx(m["teacher"] / m["student"])
        assert m["speedup_median"] == pytest.approx(m["teacher_median"] / m["student_median"])
        assert result["meets_target"][f"batch 2 {tower}"] == (m["speedup"] >= assembled_speed.TARGET_SPEEDUP)
    assert row["text_ms"]["tokens"] == pair.models["teacher"].tokenize(assembled_speed.CAPTIONS[:2]).shape[1]
    assert result["threads"]["xnnpack_threadpool"] == 1 and result["runtime"].startswith("ExecuTorch XNNPACK fp32")
    assert result["programs"]["batch 2"]["teacher"]["lowering_s"] > 0
    assert len(list(pte.glob("*.pte"))) == 4

    monkeypatch.setattr(assembled_speed, "build_models", lambda: pair)
    argv = ["--runtime", "executorch", "--batches", "2", "--repeats", "1", "--keep", str(pte), "--json"]
    assert assembled_speed.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["programs"]["batch 2"]["student"]["lowering_s"] is None  # reused, not lowered again


def test_eager_run_prints_the_table(monkeypatch, capsys):
    monkeypatch.setattr(assembled_speed, "build_models", tiny_pair)
    assert assembled_speed.main(["--batches", "1", "--repeats", "1", "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| batch | tower | teacher ms") and len(lines) == 4
    assert lines[3].startswith("| 1 | text (") and lines[3].endswith("x |")


def test_every_flag_has_help(capsys):
    with pytest.raises(SystemExit):
        assembled_speed.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--runtime", "--threads", "--batches", "--repeats", "--warmup", "--keep", "--json", "--out"):
        assert flag in text
    assert text.count("(default:") >= 5
