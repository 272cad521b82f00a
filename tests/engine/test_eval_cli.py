"""`python -m app.engine eval`: recall@1/5/10 through the engine, float16 vs float32 indexes, clear errors."""
import json
from pathlib import Path

import pytest

from app.engine.__main__ import main
from app.engine.half_embeddings import faiss_available
from app.engine.native_half_topk import native_kernel

COLOURS = ["a red photo", "a green photo", "a blue photo", "a dark photo", "a bright photo"]


def _captions(gallery, tmp_path):
    photos = sorted(p for p in gallery.rglob("*") if p.is_file())
    tsv = tmp_path / "captions.tsv"
    tsv.write_text("".join(f"{p.relative_to(tmp_path)}\t{COLOURS[i % 5]} number {i}\n" for i, p in enumerate(photos)))
    karpathy = tmp_path / "captions.json"
    karpathy.write_text(json.dumps({"images": [
        {"filepath": str(p.parent.relative_to(tmp_path)), "filename": p.name, "split": "test" if i < 4 else "train",
         "sentences": [{"raw": COLOURS[i % 5]}, {"raw": f"photo {i}"}]} for i, p in enumerate(photos)]}))
    return tsv, karpathy


def test_eval_float16_index_gives_float32s_recall(tmp_path, random_student_dir, make_gallery, capsys):
    gallery = make_gallery(12)
    tsv, karpathy = _captions(gallery, tmp_path)
    figures = {}
    for dtype in ("float32", "float16"):
        base = ["--data-dir", str(tmp_path / dtype), "--model", str(random_student_dir)]
        assert main([*base, "index", "--gallery", str(gallery), "--no-progress", "--embedding-dtype", dtype]) == 0
        capsys.readouterr()
        assert main([*base, "status", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["embedding_dtype"] == dtype
        want_native = dtype == "float16" and native_kernel() is not None and not faiss_available()
        assert status["search_kernel"].startswith("native") == want_native
        for name, path, extra in (("tsv", tsv, []), ("json", karpathy, []), ("split", karpathy, ["--split", "test"])):
            capsys.readouterr()
            assert main([*base, "eval", "--captions", str(path), "--json", *extra]) == 0
            figures[dtype, name] = json.loads(capsys.readouterr().out)
    assert figures["float16", "tsv"]["embedding_dtype"] == "float16"
    assert figures["float32", "tsv"]["captions"] == 12 and figures["float32", "json"]["captions"] == 24
    assert figures["float32", "split"]["captions"] == 8 and figures["float32", "split"]["images"] == 4
    assert figures["float32", "tsv"]["R@10"] >= figures["float32", "tsv"]["R@5"] >= figures["float32", "tsv"]["R@1"]
    for name in ("tsv", "json", "split"):
        for k in (1, 5, 10):
            assert abs(figures["float16", name][f"R@{k}"] - figures["float32", name][f"R@{k}"]) <= 0.1, figures


def test_index_refuses_to_change_an_existing_index_dtype(tmp_path, random_student_dir, make_gallery, capsys):
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(random_student_dir)]
    gallery = make_gallery(2)
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress", "--embedding-dtype", "float16"]) == 2
    assert "stores float32 embeddings, not float16" in capsys.readouterr().err
    assert main([*base, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedding_dtype"] == "float32"


@pytest.mark.parametrize("content, message", [
    ("photo.png a caption without a tab\n", "captions.tsv:2: expected `path<TAB>caption`"),
    ("missing.png\ta caption\n", "captions.tsv:2: photo"),
    ("photo.png\t   \n", "captions.tsv:2: expected"),
])
def test_eval_bad_tsv_names_the_line(tmp_path, random_student_dir, make_gallery, capsys, content, message):
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    tsv = tmp_path / "captions.tsv"
    tsv.write_text("photo.png\tfine\n" + content)
    assert main(["--data-dir", str(tmp_path / "d"), "--model", str(random_student_dir), "eval", "--captions", str(tsv)]) == 2
    assert message in capsys.readouterr().err


def test_eval_bad_json_and_unindexed_photos_are_clear_errors(tmp_path, random_student_dir, make_gallery, capsys):
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(random_student_dir)]
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n{"filename": "x.png", }]}')
    assert main([*base, "eval", "--captions", str(bad)]) == 2
    assert "bad.json:2: not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"images": [{"filename": "x.png", "sentences": [{"tokens": []}]}]}))
    assert main([*base, "eval", "--captions", str(bad)]) == 2
    assert "images[0].sentences[0] has no 'raw'" in capsys.readouterr().err
    gallery = make_gallery(2)
    assert main([*base, "index", "--gallery", str(gallery / "album0"), "--no-progress"]) == 0
    other = next((gallery / "album1").iterdir())
    tsv = tmp_path / "c.tsv"
    tsv.write_text(f"{other}\tsomething\n")
    capsys.readouterr()
    assert main([*base, "eval", "--captions", str(tsv)]) == 2
    assert "c.tsv:1: photo" in (err := capsys.readouterr().err) and "is not in the index" in err


def test_eval_unreadable_captions_files_are_clear_errors(tmp_path, random_student_dir, capsys):
    base = ["--data-dir", str(tmp_path / "d"), "--model", str(random_student_dir), "eval", "--captions"]
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(b"a.png\tfine\nb.png\tcaf\xe9\n")
    assert main([*base, str(latin1)]) == 2
    assert "latin1.tsv:2: not UTF-8 text" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "absent.tsv")]) == 2
    assert "absent.tsv: cannot read the captions file" in capsys.readouterr().err
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    assert main([*base, str(empty)]) == 2
    assert "empty.tsv: no captions" in capsys.readouterr().err
    assert main([*base, str(empty), "--split", "test"]) == 2
    assert "--split needs a Karpathy JSON" in capsys.readouterr().err
    not_karpathy = tmp_path / "list.json"
    not_karpathy.write_text("[1, 2]")
    assert main([*base, str(not_karpathy)]) == 2
    assert "an object with an 'images' list" in capsys.readouterr().err


def test_eval_reads_the_committed_real_gallerys_captions(tmp_path, random_student_dir, capsys):
    """The desktop's default gallery ships a captions.tsv for `eval`: index the gallery, evaluate every row."""
    gallery = Path(__file__).resolve().parents[2] / "assets" / "real_gallery"
    rows = (gallery / "captions.tsv").read_text(encoding="utf-8").splitlines()
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(random_student_dir)]
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*base, "eval", "--captions", str(gallery / "captions.tsv"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["captions"] == figures["images"] == len(rows) >= 50
    assert figures["R@10"] >= figures["R@5"] >= figures["R@1"] >= 0.0
