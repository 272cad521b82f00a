"""`python -m app.engine` given bad values, a bad data directory, hostile file names: one line, never a traceback."""
import json
import os

import pytest

from app.engine.__main__ import main


def _base(tmp_path, model) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--model", str(model)]


@pytest.mark.parametrize("argv", [
    ["--threads", "-1", "index", "--gallery", "G"],
    ["index", "--gallery", "G", "--batch-size", "0"],
    ["index", "--gallery", "G", "--batch-size", "-3"],
    ["index", "--gallery", "G", "--workers", "0"],
    ["index", "--gallery", "G", "--throttle", "inf"],
    ["index", "--gallery", "G", "--throttle", "nan"],
    ["index", "--gallery", "G", "--throttle", "-1"],
    ["search", "x", "--rerank", "100000"],
    ["search", "x", "--k", "-5"],
    ["similar", "p.jpg", "--k", "zero"],
])
def test_bad_flag_values_are_refused_before_anything_is_touched(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(_base(tmp_path, tmp_path / "model") + argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and "error: argument" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("make_bad", ["a file", "under a file"])
def test_a_data_dir_that_cannot_be_used_is_one_line(tmp_path, random_student_dir, make_gallery, capsys, make_bad):
    (tmp_path / "blocker").write_text("a file, not a folder")
    data = tmp_path / "blocker" if make_bad == "a file" else tmp_path / "blocker" / "sub"
    code = main(["--data-dir", str(data), "--model", str(random_student_dir), "index", "--gallery",
                 str(make_gallery(2)), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot use" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["missing", "short"])
def test_status_check_of_a_missing_or_short_matrix(tmp_path, random_student_dir, make_gallery, capsys, damage):
    base = _base(tmp_path, random_student_dir)
    assert main([*base, "index", "--gallery", str(make_gallery(4)), "--no-progress"]) == 0
    matrix = next((tmp_path / "data").glob("embeddings-*.f32"))
    if damage == "missing":
        matrix.unlink()
    else:
        os.truncate(matrix, matrix.stat().st_size // 2)
    capsys.readouterr()
    assert main([*base, "status", "--check"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out
    assert main([*base, "search", "a red circle"]) == 2  # never "no photos indexed yet"
    err = capsys.readouterr().err
    assert "run `python -m app.engine index` to repair" in err and "no photos indexed" not in err


def test_similar_on_a_file_that_exhausts_memory_is_one_line(tmp_path, random_student_dir, make_gallery, capsys,
                                                            monkeypatch, image_writer):
    base = _base(tmp_path, random_student_dir)
    assert main([*base, "index", "--gallery", str(make_gallery(3)), "--no-progress"]) == 0
    query = image_writer(tmp_path / "outside.png", seed=1)

    def out_of_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr("app.engine.engine.load_photo", out_of_memory)
    capsys.readouterr()
    assert main([*base, "similar", str(query)]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "Traceback" not in err


def test_hostile_file_names_cannot_fake_result_lines(tmp_path, random_student_dir, image_writer, capsys):
    gallery = tmp_path / "g"
    names = ["fake\n 1.0000  evil.png", "red\x1b[31mALERT\x1b[0m.png", "bidi\u202egnp.exe.png"]
    for i, name in enumerate(names):
        image_writer(gallery / name, seed=i)
    image_writer(tmp_path / "t.png", seed=9)
    os.rename(tmp_path / "t.png", os.fsencode(gallery) + b"/caf\xe9.png")
    base = _base(tmp_path, random_student_dir)
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*base, "search", "a photo", "--k", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 4 and "\x1b" not in out and "\u202e" not in out
    assert any(line.endswith("caf\\xe9.png") for line in lines)
    assert main([*base, "search", "a photo", "--k", "10", "--json"]) == 0
    results = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"invalid JSON {c}"))
    assert sorted(os.fsencode(r["path"]) for r in results) == sorted(
        [os.fsencode(str(gallery / n)) for n in names] + [os.fsencode(gallery) + b"/caf\xe9.png"])


@pytest.mark.parametrize("embed_dim", [10**9, 1e9])
def test_a_student_spec_that_does_not_fit_its_weights_is_one_line(tmp_path, random_student_dir, capsys, embed_dim):
    """A damaged student.json (embed_dim 1e9) used to allocate the model before the weights were checked:
    a traceback from torch, gigabytes. The spec is now checked against the weights on the meta device."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(random_student_dir, run)
    card = json.loads((run / "student.json").read_text())
    card["spec"]["embed_dim"] = embed_dim
    (run / "student.json").write_text(json.dumps(card))
    code = main(["--data-dir", str(tmp_path / "data"), "--model", str(run), "search", "a red circle"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "student" in err
