"""The engine against hostile or careless input, one test per defect found by the hostile review (issue 14)."""
import os
import sqlite3
import time

import numpy as np
import pytest

from app.engine import decode
from app.engine.engine import SearchEngine
from app.engine.fingerprint import fingerprint_file
from app.engine.scanner import KnownPhoto, plan_changes, walk_gallery
from app.engine.store import DB_NAME, EmbeddingStore, StoreError


def _all(engine: SearchEngine) -> list[str]:
    return sorted(r.path for r in engine.search_text("anything", k=10_000))


def _own_embedding(encoders, path) -> np.ndarray:
    return encoders.encode_images(decode.load_photo(path, encoders.preprocess).pixels[None])[0]


def _matrix_path(data_dir) -> str:
    with sqlite3.connect(data_dir / DB_NAME) as c:
        return str(data_dir / dict(c.execute("SELECT key, value FROM meta").fetchall())["matrix_file"])


# ---------------------------------------------------------------- 2. names that are not text


def test_a_latin1_file_name_is_indexed_searched_and_used_as_a_query(tmp_path, make_gallery, fake_encoders,
                                                                     image_writer):
    gallery = make_gallery(4)
    raw = os.fsencode(gallery) + b"/caf\xe9.jpg"  # Latin-1, not UTF-8: as in Windows zips and SD cards
    image_writer(tmp_path / "tmp.jpg", seed=5)
    os.rename(tmp_path / "tmp.jpg", raw)
    name = os.fsdecode(raw)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        result = engine.update([gallery])
        assert result.index.indexed == 5
        assert engine.search_vector(_own_embedding(fake_encoders, name), 1)[0].path == name
        assert name in _all(engine)
        similar = engine.search_image(name, k=10)
        assert len(similar) == 4 and name not in [r.path for r in similar]
        assert not engine.update([gallery]).scan.plan.has_changes  # stored and read back losslessly
        os.rename(raw, raw[:-4] + b"-moved.jpg")
        assert len(engine.update([gallery]).scan.plan.moved) == 1


# ---------------------------------------------------------------- 4. a photo replaced by a non-image


def test_a_photo_replaced_by_a_non_image_is_no_longer_returned(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(10)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        victims = sorted(gallery.rglob("*.*"))[:3]
        for v in victims:
            v.write_bytes(b"this is not an image any more " * 10)
        result = engine.update([gallery])
        assert result.index.skipped == {decode.NOT_AN_IMAGE: 3}
        found = _all(engine)
        assert len(found) == 7 and not {str(v) for v in victims} & set(found)
        assert engine.store.check() == []
        st = engine.stats()
        assert (st.indexed, st.failed, st.dead_rows) == (7, 3, 3)


# ---------------------------------------------------------------- 5. damage to the embedding matrix


def _flip_bytes(path: str, offsets) -> None:
    with open(path, "r+b") as f:
        for off in offsets:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ 0x7F]))


def test_byte_flips_in_the_matrix_are_never_ranked_and_are_repaired(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(30)
    data = tmp_path / "data"
    with SearchEngine(data, fake_encoders) as engine:
        engine.update([gallery])
    dim = fake_encoders.embed_dim
    damaged_rows = [2, 11, 17]
    _flip_bytes(_matrix_path(data), [r * dim * 4 + 3 for r in damaged_rows])  # exponent bytes: huge norms
    with SearchEngine(data, fake_encoders, readonly=True) as reader:  # a reader skips damaged rows
        results = reader.search_text("anything", k=30)
        assert len(results) == 27
        assert all(abs(r.score) <= 1.0001 for r in results)
        problems = reader.store.check()
        assert any("3 live embedding rows do not match" in p for p in problems)
    encoded = fake_encoders.images_encoded
    with SearchEngine(data, fake_encoders) as engine:  # the writer finds them on open and re-encodes
        assert any("3 of 30 embedding rows" in n for n in engine.notes)
        engine.update([gallery])
        assert fake_encoders.images_encoded == encoded + 3
        assert engine.store.check() == [] and len(_all(engine)) == 30
        for p in sorted(gallery.rglob("*.*"))[:5]:
            assert engine.search_vector(_own_embedding(fake_encoders, p), 1)[0].path == str(p)


def test_a_matrix_from_another_index_of_the_same_photos_is_detected(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(12)
    with SearchEngine(tmp_path / "a", fake_encoders) as engine:
        engine.update([gallery])
    with SearchEngine(tmp_path / "b", fake_encoders) as engine:  # same photos, other order
        engine.scan([gallery])
        with engine.store._conn as c:
            c.execute("UPDATE photos SET id = 1000 - id")
        engine.index()
    os.replace(_matrix_path(tmp_path / "b"), _matrix_path(tmp_path / "a"))
    with SearchEngine(tmp_path / "a", fake_encoders, readonly=True) as reader:
        assert reader.search_text("x", k=12) == []  # every row is foreign: nothing wrong is returned
    with SearchEngine(tmp_path / "a", fake_encoders) as engine:
        engine.update([gallery])
        for p in sorted(gallery.rglob("*.*")):
            assert engine.search_vector(_own_embedding(fake_encoders, p), 1)[0].path == str(p)


def test_a_nan_row_is_repaired_and_json_stays_valid(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(5)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    m = np.memmap(_matrix_path(tmp_path / "data"), dtype="<f4", mode="r+").reshape(5, -1)
    m[1] = np.nan
    m.flush()
    del m
    with SearchEngine(tmp_path / "data", fake_encoders, readonly=True) as reader:
        results = reader.search_text("x", k=5)
        assert len(results) == 4 and all(np.isfinite(r.score) for r in results)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        assert engine.store.check() == [] and len(engine.search_text("x", k=5)) == 5


# ---------------------------------------------------------------- 6. writes only inside the data directory


def test_a_matrix_path_in_the_database_never_leads_outside(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(4)
    data = tmp_path / "data"
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me" * 100)
    with SearchEngine(data, fake_encoders) as engine:
        engine.update([gallery])
    for name in (str(outside), "../precious.txt"):
        with sqlite3.connect(data / DB_NAME) as c:
            c.execute("UPDATE meta SET value=? WHERE key='matrix_file'", (name,))
        with pytest.raises(StoreError, match="matrix_file"):
            SearchEngine(data, fake_encoders, readonly=True)
        with SearchEngine(data, fake_encoders) as engine:  # the writer rebuilds, never touching the file
            assert any("matrix_file" in n for n in engine.notes)
            engine.update([gallery])
            engine.update([gallery])
        with SearchEngine(data, fake_encoders.__class__(model_id="fake-v2")) as engine:  # a model change too
            engine.update([gallery])
        assert outside.read_bytes() == b"keep me" * 100


def test_a_matrix_file_that_is_a_link_is_not_written_through(tmp_path, make_gallery, fake_encoders, image_writer):
    gallery = make_gallery(4)
    data = tmp_path / "data"
    with SearchEngine(data, fake_encoders) as engine:
        engine.update([gallery])
    matrix = _matrix_path(data)
    outside = tmp_path / "outside.bin"
    os.replace(matrix, outside)
    before = outside.read_bytes()
    os.symlink(outside, matrix)
    with SearchEngine(data, fake_encoders) as engine:
        image_writer(gallery / "new.png", seed=50)
        engine.update([gallery])
        assert len(_all(engine)) == 5
    assert outside.read_bytes() == before


# ---------------------------------------------------------------- 7. deleting needs evidence


def test_a_mistyped_gallery_deletes_nothing(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(8, "Pictures")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        plan = engine.update([tmp_path / "Picturs"]).scan.plan
        assert plan.deleted == [] and engine.stats().indexed == 8
        encoded = fake_encoders.images_encoded
        engine.update([gallery])
        assert fake_encoders.images_encoded == encoded  # nothing to re-encode


def test_an_empty_mount_point_deletes_nothing(tmp_path, make_gallery, fake_encoders):
    card = make_gallery(8, "card")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([card])
        os.rename(card, tmp_path / "card-away")
        card.mkdir()  # the mount point without the card
        result = engine.update([card])
        assert result.scan.plan.deleted == [] and result.scan.plan.kept_roots == [str(card)]
        assert engine.stats().indexed == 8
        card.rmdir()
        os.rename(tmp_path / "card-away", card)
        encoded = fake_encoders.images_encoded
        assert not engine.update([card]).scan.plan.has_changes and fake_encoders.images_encoded == encoded


def test_a_deliberate_deletion_still_deletes(tmp_path, make_gallery, fake_encoders):
    a, b = make_gallery(6, "a"), make_gallery(3, "b")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([a, b])
        for p in sorted(a.rglob("*.*"))[:5]:
            p.unlink()
        assert len(engine.update([a, b]).scan.plan.deleted) == 5
        assert len(engine.update([b]).scan.plan.deleted) == 1  # a folder dropped from the gallery


# ---------------------------------------------------------------- 8. a long-lived reader and a model change


def test_a_reader_notices_that_the_writer_changed_the_model(tmp_path, make_gallery, fake_encoders,
                                                            fake_encoders_class):
    gallery = make_gallery(6)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    with SearchEngine(tmp_path / "data", fake_encoders, readonly=True) as reader:
        assert len(reader.search_text("x", k=6)) == 6
        with SearchEngine(tmp_path / "data", fake_encoders_class(model_id="fake-v2")) as writer:
            writer.update([gallery])
        with pytest.raises(StoreError, match="rebuilt with model fake-v2"):
            reader.search_text("x", k=6)


# ---------------------------------------------------------------- 9. edits are never taken for unchanged or moved


def test_a_same_size_edit_that_keeps_mtime_is_re_encoded(tmp_path, make_gallery, fake_encoders, image_writer):
    gallery = make_gallery(4)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        photo = min(gallery.rglob("*.png"))
        st = photo.stat()
        data = bytearray(photo.read_bytes())
        image_writer(tmp_path / "other.png", size=(24, 20), colour=(0, 0, 250), seed=3)
        other = (tmp_path / "other.png").read_bytes()
        time.sleep(0.01)
        photo.write_bytes(other[: len(data)].ljust(len(data), b"\0"))  # cp -p / rsync -t: same size and mtime
        os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert photo.stat().st_size == st.st_size
        plan = engine.update([gallery]).scan.plan
        assert len(plan.changed) == 1


def test_an_edit_in_the_middle_of_a_big_file_and_a_move_is_not_a_move(tmp_path):
    root = tmp_path / "g"
    root.mkdir()
    original = os.urandom(1_000_000)
    (root / "big.jpg").write_bytes(original)
    known = {str(root / "big.jpg"): KnownPhoto(1, len(original), 1, fingerprint_file(root / "big.jpg"))}
    edited = original[:500_000] + bytes([original[500_000] ^ 1]) + original[500_001:]
    (root / "big.jpg").unlink()
    (root / "renamed.jpg").write_bytes(edited)
    plan = plan_changes(walk_gallery([root], extensions=frozenset({".jpg"})), known)
    assert plan.moved == [] and len(plan.new) == 1 and plan.deleted == [1]


def test_a_touch_is_not_re_encoded(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(5)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        encoded = fake_encoders.images_encoded
        photo = min(gallery.rglob("*.*"))
        os.utime(photo, ns=(time.time_ns() + 10**9,) * 2)
        result = engine.update([gallery])
        assert len(result.scan.plan.changed) == 1 and result.index.unchanged == 1
        assert fake_encoders.images_encoded == encoded
        assert not engine.update([gallery]).scan.plan.has_changes
        assert engine.search_vector(_own_embedding(fake_encoders, photo), 1)[0].path == str(photo)


# ---------------------------------------------------------------- 11. containment of the walk


def test_a_link_to_a_folder_outside_the_gallery_is_not_followed(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(3)
    elsewhere = make_gallery(4, "elsewhere")
    os.symlink(elsewhere, gallery / "link-out")
    os.symlink(gallery / "album0", gallery / "link-in")  # inside: followed (and visited once)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        result = engine.update([gallery])
        assert result.index.indexed == 3
        assert result.scan.report.skipped.get("link to a folder outside the gallery") == 1


def test_the_recovery_note_is_given_once(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(3)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    for f in (tmp_path / "data").glob("index.sqlite*"):
        f.write_bytes(os.urandom(3000))
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        assert len(engine.notes) == len(set(engine.notes)) == 1


def test_a_sparse_file_is_not_read(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(2)
    with open(gallery / "sparse.jpg", "wb") as f:
        f.truncate(200 * 1024 * 1024)
    if os.stat(gallery / "sparse.jpg").st_blocks * 512 >= 200 * 1024 * 1024:
        pytest.skip("this file system does not make sparse files")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        result = engine.update([gallery])
        assert result.index.skipped == {decode.SPARSE_FILE: 1}


def test_an_index_with_a_missing_matrix_says_so(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(3)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    os.unlink(_matrix_path(tmp_path / "data"))
    with SearchEngine(tmp_path / "data", fake_encoders, readonly=True) as reader:
        with pytest.raises(StoreError, match="holds 0 of its 3 rows"):
            reader.search_text("x")
        assert any("no file" in p for p in reader.store.check())
    with EmbeddingStore(tmp_path / "data") as store:  # the writer queues them again
        assert store.stats().pending == 3


# ---------------------------------------------------------------- 3 and 10. bounded re-ranking, absurd model sizes


def test_re_ranking_many_photos_runs_the_teacher_in_bounded_batches(tmp_path, make_gallery, fake_encoders):
    from app.engine.engine import RERANK_BATCH
    from app.engine.search import SearchResult

    class RecordingReranker:
        def __init__(self):
            self.batches: list[int] = []

        def rerank(self, query, candidates):
            self.batches.append(len(candidates))
            return [SearchResult(c.path, -c.score, c.photo_id) for c in candidates]

    gallery = make_gallery(150)
    reranker = RecordingReranker()
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        plain = engine.search_text("x", k=150)
        engine.reranker = reranker
        reranked = engine.search_text("x", k=5, rerank_top_m=150)
    assert max(reranker.batches) <= RERANK_BATCH and sum(reranker.batches) == 150
    assert [r.path for r in reranked] == [r.path for r in plain[::-1][:5]]  # merged across batches


def test_an_absurd_embedding_size_is_refused_before_the_data_dir_is_touched(tmp_path, fake_encoders_class):
    enc = fake_encoders_class()
    enc.embed_dim = 10**9
    with pytest.raises(StoreError, match="embedding size 1000000000"):
        SearchEngine(tmp_path / "data", enc)
    assert not (tmp_path / "data").exists()
