"""A rescan of a gallery folder that still lists but shows no photo (a phone after a permission change)
keeps the index; it does not read as "every photo deleted"."""
from __future__ import annotations

import shutil

from app.engine.engine import SearchEngine


def test_an_emptied_root_keeps_its_photos(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(6)
    other = make_gallery(2, name="other")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery, other])
        assert engine.stats().indexed == 8
        hidden = tmp_path / "hidden"
        shutil.move(str(gallery), hidden)  # what an app whose photo access was narrowed sees: an empty folder
        gallery.mkdir()
        scan = engine.scan([gallery, other])
        assert scan.plan.deleted == [] and str(gallery) in scan.plan.kept_roots
        assert engine.stats().photos == 8
        # a photo deleted from a folder that still lists others is deleted from the index as before
        next(other.rglob("*.*")).unlink()
        assert len(engine.scan([gallery, other]).plan.deleted) == 1
        shutil.rmtree(gallery)
        shutil.move(str(hidden), gallery)  # access back: nothing to re-index
        scan = engine.scan([gallery, other])
        assert scan.plan.new == [] and scan.plan.unchanged == 7  # 6 back + 1 left in "other"

