"""`python -m app.engine`: every flag documented, index/search/similar/status end to end, clear errors."""
import argparse
import json

import pytest

from app.engine.__main__ import build_parser, main, parse_args


def test_help_describes_every_flag(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in [("", parser), *subparsers.choices.items()]:
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        with pytest.raises(SystemExit) as info:
            parse_args([name, "--help"] if name else ["--help"])
        assert info.value.code == 0 and "usage: python -m app.engine" in capsys.readouterr().out
    ix = parse_args(["index", "--gallery", "g"])
    assert ix.batch_size is None and ix.workers is None and ix.throttle == 0.0  # None: one decode thread per core


def test_index_search_similar_status(tmp_path, random_student_dir, make_gallery, capsys):
    gallery = make_gallery(10)
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(random_student_dir)]
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "10 new" in out and "10 indexed" in out
    assert main([*base, "search", "a red circle", "--k", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3 and all(r["path"].startswith(str(gallery)) for r in results)
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]
    photo = min(gallery.rglob("*.png"))
    assert main([*base, "similar", str(photo), "--k", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9 and str(photo) not in "".join(lines)
    assert main([*base, "status", "--check", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["indexed"] == 10 and status["problems"] == []
    assert main([*base, "index", "--gallery", str(gallery), "--no-progress"]) == 0  # rescan: nothing to do
    assert "10 unchanged" in capsys.readouterr().out


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_clear_error(tmp_path, random_student_dir, make_gallery, capsys, query):
    base = ["--data-dir", str(tmp_path / "data"), "--model", str(random_student_dir)]
    main([*base, "index", "--gallery", str(make_gallery(2)), "--no-progress"])
    capsys.readouterr()
    assert main([*base, "search", query]) == 2
    assert "empty query" in capsys.readouterr().err


def test_errors_name_the_problem(tmp_path, random_student_dir, capsys):
    assert main(["--data-dir", str(tmp_path / "d"), "--model", str(tmp_path / "nope"), "search", "x"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path / "d"), "--model", str(random_student_dir), "search", "x"]) == 2
    assert "no index in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # refused while parsing, before anything is opened
        main(["--data-dir", str(tmp_path / "d"), "--model", str(random_student_dir), "search", "x", "--k", "0"])
    assert info.value.code == 2 and "--k: 0 is out of range" in capsys.readouterr().err
