"""Gallery walks and change detection: extensions, hidden folders, links, loops, moves, unavailable roots."""
import os

from app.engine import scanner
from app.engine.fingerprint import fingerprint_file
from app.engine.scanner import KnownPhoto, ScanReport, plan_changes, supported_extensions, walk_gallery


def test_walk_finds_photos_by_extension_and_skips_the_rest(tmp_path, image_writer):
    root = tmp_path / "g"
    image_writer(root / "a.JPG", fmt="JPEG")
    image_writer(root / "b.png")
    image_writer(root / "sub" / "c.webp")
    image_writer(root / "sub" / "d.gif")
    (root / "notes.txt").write_text("x")
    (root / "noext").write_text("x")
    image_writer(root / ".thumbnails" / "t.jpg")  # hidden folder
    image_writer(root / "cache" / "x.jpg")
    (root / "cache" / ".nomedia").write_text("")  # Android: not part of the gallery
    image_writer(root / ".hidden.jpg")
    report = ScanReport()
    found = {os.path.relpath(f.path, root) for f in walk_gallery([root], report)}
    assert found == {"a.JPG", "b.png", os.path.join("sub", "c.webp"), os.path.join("sub", "d.gif")}
    assert report.files == 4
    assert {".jpg", ".png", ".webp", ".gif"} <= supported_extensions()


def test_symlink_loops_and_broken_links_are_counted_not_fatal(tmp_path, image_writer):
    root = tmp_path / "g"
    image_writer(root / "a" / "p.jpg")
    os.symlink(root, root / "a" / "loop")  # a -> g -> a -> ...
    os.symlink(tmp_path / "nowhere.jpg", root / "broken.jpg")
    report = ScanReport()
    found = list(walk_gallery([root], report))
    assert [os.path.basename(f.path) for f in found] == ["p.jpg"]
    assert report.skipped.get("folder already visited (link loop or duplicate)") == 1
    assert report.skipped.get("broken link or vanished file") == 1


def test_unreadable_folder_is_kept_not_deleted(tmp_path, image_writer, monkeypatch):
    root = tmp_path / "g"
    image_writer(root / "open" / "a.jpg")
    image_writer(root / "locked" / "b.jpg")
    real = os.scandir

    def scandir(path):  # chmod 000 does not stop root: simulate the refusal
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scanner.os, "scandir", scandir)
    report = ScanReport()
    files = list(walk_gallery([root], report))
    known = {str(root / "locked" / "b.jpg"): KnownPhoto(1, 10, 10, None)}
    plan = plan_changes(files, known, keep_roots=report.unavailable)
    assert plan.deleted == [] and report.skipped["unreadable folder"] == 1
    assert [os.path.basename(f.path) for f in plan.new] == ["a.jpg"]


def test_missing_root_keeps_its_photos(tmp_path):
    report = ScanReport()
    gone = tmp_path / "sdcard"
    files = list(walk_gallery([gone], report))
    plan = plan_changes(files, {str(gone / "x.jpg"): KnownPhoto(7, 1, 1, None)}, keep_roots=report.unavailable)
    assert files == [] and plan.deleted == [] and report.unavailable == [str(gone)]


def test_plan_new_changed_deleted_moved(tmp_path, image_writer):
    root = tmp_path / "g"
    a = image_writer(root / "a.jpg", seed=1)
    b = image_writer(root / "b.jpg", seed=2)
    c = image_writer(root / "c.jpg", seed=3)
    first = {f.path: f for f in walk_gallery([root])}
    known = {p: KnownPhoto(i, f.size, f.mtime_ns, fingerprint_file(p)) for i, (p, f) in enumerate(sorted(first.items()))}
    # a unchanged; b rewritten; c moved into a subfolder; d new; e known but deleted
    image_writer(b, seed=20)
    os.utime(b, ns=(first[str(b)].mtime_ns + 10**9, first[str(b)].mtime_ns + 10**9))
    (root / "sub").mkdir()
    os.rename(c, root / "sub" / "c.jpg")
    image_writer(root / "d.jpg", seed=4)
    known[str(root / "e.jpg")] = KnownPhoto(99, 123, 1, b"x" * 16)
    plan = plan_changes(walk_gallery([root]), known)
    assert plan.unchanged == 1 and str(a) in known
    assert [f.path for _, f in plan.changed] == [str(b)]
    assert [(i, f.path) for i, f in plan.moved] == [(known[str(c)].id, str(root / "sub" / "c.jpg"))]
    assert [f.path for f in plan.new] == [str(root / "d.jpg")]
    assert plan.deleted == [99]


def test_a_copy_is_new_and_a_vanished_photo_moves_only_once(tmp_path, image_writer):
    root = tmp_path / "g"
    a = image_writer(root / "a.jpg", seed=1)
    fp = fingerprint_file(a)
    size = a.stat().st_size
    os.rename(a, root / "a2.jpg")
    (root / "a3.jpg").write_bytes((root / "a2.jpg").read_bytes())  # same content twice
    plan = plan_changes(walk_gallery([root]), {str(a): KnownPhoto(1, size, 5, fp)})
    assert len(plan.moved) == 1 and len(plan.new) == 1 and plan.deleted == []


def test_rescan_of_an_unchanged_gallery_plans_nothing(tmp_path, image_writer):
    root = tmp_path / "g"
    for i in range(30):
        image_writer(root / f"d{i % 3}" / f"{i}.png", seed=i)
    files = list(walk_gallery([root]))
    known = {f.path: KnownPhoto(i, f.size, f.mtime_ns, None) for i, f in enumerate(files)}
    plan = plan_changes(walk_gallery([root]), known)
    assert not plan.has_changes and plan.unchanged == 30


def test_data_dir_inside_a_root_is_not_scanned(tmp_path, image_writer):
    root = tmp_path / "g"
    image_writer(root / "a.jpg")
    image_writer(root / "index" / "thumb.jpg")
    files = list(walk_gallery([root], exclude=[root / "index"]))
    assert [os.path.basename(f.path) for f in files] == ["a.jpg"]


def test_formats_without_a_decoder_are_counted_not_hidden(tmp_path, image_writer):
    root = tmp_path / "g"
    image_writer(root / "a.jpg")
    (root / "b.heic").write_bytes(b"\0\0\0\x18ftypheic")
    report = ScanReport()
    found = [os.path.basename(f.path) for f in walk_gallery([root], report)]
    if ".heic" in supported_extensions():  # pillow-heif installed: HEIC is indexed like the rest
        assert found == ["a.jpg", "b.heic"]
    else:
        assert found == ["a.jpg"] and report.skipped == {"no decoder for .heic installed": 1}
