"""Tests for compression.data.pairs_tsv: image<TAB>caption files, good and every way they go bad."""

from __future__ import annotations

import pytest

from compression.data.pairs_tsv import read_pairs_tsv
from compression.data.readers import DataFormatError
from tests.compression.data.image_fixture import make_image


def test_tsv_groups_captions_in_order_of_first_appearance(tmp_path):
    make_image(tmp_path / "imgs" / "b.jpg")
    make_image(tmp_path / "imgs" / "a.png")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text(
        "image\tcaption\n"
        "imgs/b.jpg\tA blue car.\n"
        "\n"
        "imgs/a.png\t  A red door. \n"
        "   \n"
        "./imgs/b.jpg\tA car, blue.\r\n",
        encoding="utf-8",
    )
    data = read_pairs_tsv(tsv, None)
    assert data.names == ["imgs/b.jpg", "imgs/a.png"]
    assert data.captions == [["A blue car.", "A car, blue."], ["A red door."]]
    assert data.images.paths[0] == tmp_path / "imgs" / "b.jpg"
    assert data.skipped.total == 0


def test_tsv_filepath_title_header_and_image_root(tmp_path):
    root = tmp_path / "root"
    make_image(root / "x.jpg")
    tsv = tmp_path / "meta" / "cc.tsv"
    tsv.parent.mkdir()
    tsv.write_text("filepath\ttitle\nx.jpg\tA thing\n", encoding="utf-8")
    data = read_pairs_tsv(tsv, root)
    assert data.names == ["x.jpg"] and data.captions == [["A thing"]]


def test_tsv_absolute_paths(tmp_path):
    img = make_image(tmp_path / "abs" / "z.jpg")
    tsv = tmp_path / "p.tsv"
    tsv.write_text(f"{img}\tZed\n", encoding="utf-8")
    data = read_pairs_tsv(tsv, None)
    assert data.images.paths == [img]


def test_tsv_bad_lines_counted(tmp_path):
    make_image(tmp_path / "ok.jpg")
    make_image(tmp_path / "onlyempty.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(
        "ok.jpg\tfine\n"
        "no tab on this line\n"
        "ok.jpg\t\n"
        "\tcaption without image\n"
        "ok.jpg\ttoo\tmany\n"
        "onlyempty.jpg\t   \n"
        "missing.jpg\tghost\n"
        "zero.jpg\tnothing\n",
        encoding="utf-8",
    )
    data = read_pairs_tsv(tsv, None)
    assert data.names == ["ok.jpg"] and data.captions == [["fine"]]
    assert data.skipped.counts == {
        "malformed line": 3,
        "empty caption": 2,
        "image with no captions": 1,
        "missing image file": 1,
        "empty image file": 1,
    }
    assert data.skipped.examples["malformed line"] == ["line 2", "line 4", "line 5"]


def test_tsv_without_tabs_says_tsv_only(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,caption\na.jpg,A dog\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pairs\.csv: no tab.*comma-separated"):
        read_pairs_tsv(csv, None)


def test_tsv_missing_and_all_skipped(tmp_path):
    with pytest.raises(DataFormatError, match=r"nofile\.tsv.*not found"):
        read_pairs_tsv(tmp_path / "nofile.tsv", None)
    tsv = tmp_path / "ghosts.tsv"
    tsv.write_text("a.jpg\tx\nb.jpg\ty\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"ghosts\.tsv: no usable images.*2 missing image file"):
        read_pairs_tsv(tsv, None)
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"empty\.tsv: no usable images"):
        read_pairs_tsv(empty, None)


def test_tsv_invalid_utf8_names_line(tmp_path):
    make_image(tmp_path / "a.jpg")
    tsv = tmp_path / "enc.tsv"
    tsv.write_bytes(b"a.jpg\tfine\na.jpg\tbad \xff\xfe byte\n")
    with pytest.raises(DataFormatError, match=r"enc\.tsv: line 2 is not valid UTF-8"):
        read_pairs_tsv(tsv, None)
