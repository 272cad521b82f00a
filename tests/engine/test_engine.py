"""The engine end to end with a fast fake encoder: incremental updates, bad input, search, background work."""
import os
import threading
import time

import numpy as np
import pytest

from app.engine import decode
from app.engine.engine import SearchEngine
from app.engine.search import top_k_rows
from app.engine.store import EmbeddingStore, StoreError
from app.engine.tokenizer import QueryError


def _all_results(engine: SearchEngine) -> list[str]:
    return sorted(r.path for r in engine.search_text("anything", k=10_000))


def test_index_then_search_finds_each_photo_by_its_own_embedding(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(20)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        result = engine.update([gallery])
        assert result.index.indexed == 20 and result.scan.plan.summary().startswith("20 new")
        for path in sorted(str(p) for p in gallery.rglob("*.*"))[:5]:
            q = fake_encoders.encode_images(decode.load_photo(path, fake_encoders.preprocess).pixels[None])[0]
            best = engine.search_vector(q, 1)[0]
            assert best.path == path and best.score == pytest.approx(1.0, abs=1e-5)


def test_top_k_is_exact(tmp_path, make_gallery, fake_encoders):
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([make_gallery(30)])
        snap = engine.store.snapshot()
        q = fake_encoders.encode_queries(["red"])[0]
        rows, scores = top_k_rows(snap, q, 7)
        brute = np.argsort(-(np.asarray(snap.matrix) @ q), kind="stable")[:7]
        np.testing.assert_array_equal(rows, brute)
        assert np.all(np.diff(scores) <= 0)
        results = engine.search_text("red", k=7)
        assert [r.score for r in results] == pytest.approx(scores.tolist())


def test_k_larger_than_gallery_empty_gallery_and_bad_k(tmp_path, make_gallery, fake_encoders):
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([tmp_path / "empty"])  # a missing root: nothing to index, nothing deleted
        assert engine.search_text("a cat", k=5) == []
        engine.update([make_gallery(4)])
        assert len(engine.search_text("a cat", k=1000)) == 4
        for k in (0, -1, 2.5, True):
            with pytest.raises(QueryError, match="k must be"):
                engine.search_text("a cat", k=k)
        with pytest.raises(QueryError, match="empty query"):
            engine.search_text("   ")
        assert len(engine.search_text("🐱" * 3, k=2)) == 2
        assert len(engine.search_text("long " * 2000, k=2)) == 2


def test_incremental_update_new_changed_moved_deleted(tmp_path, make_gallery, fake_encoders, image_writer):
    gallery = make_gallery(12)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        assert fake_encoders.images_encoded == 12
        again = engine.update([gallery])  # nothing changed: nothing encoded
        assert not again.scan.plan.has_changes and fake_encoders.images_encoded == 12
        photos = sorted(gallery.rglob("*.*"))
        moved_from, moved_to = photos[0], gallery / "moved" / photos[0].name
        moved_to.parent.mkdir()
        os.rename(moved_from, moved_to)
        photos[1].unlink()
        image_writer(photos[2], seed=999)  # rewritten in place
        os.utime(photos[2], ns=(time.time_ns() + 10**9,) * 2)
        image_writer(gallery / "new.png", seed=1000)
        res = engine.update([gallery])
        plan = res.scan.plan
        assert (len(plan.new), len(plan.changed), len(plan.moved), len(plan.deleted)) == (1, 1, 1, 1)
        assert fake_encoders.images_encoded == 14  # only the new and the changed photo
        paths = _all_results(engine)
        assert str(moved_to) in paths and str(moved_from) not in paths and str(photos[1]) not in paths
        assert len(paths) == 12 and engine.store.check() == []


def test_deleted_photos_never_appear_even_before_a_rescan(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(6)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        victim = sorted(gallery.rglob("*.*"))[3]
        victim.unlink()
        assert str(victim) not in _all_results(engine)
        assert len(engine.search_text("x", k=5)) == 5  # the gap is filled from further down
        engine.update([gallery])
        assert engine.stats().indexed == 5 and str(victim) not in _all_results(engine)


def test_bad_files_are_skipped_and_counted_and_the_gallery_is_never_written(
        tmp_path, make_gallery, fake_encoders, gallery_state, png_bomb):
    gallery = make_gallery(5)
    (gallery / "zero.jpg").write_bytes(b"")
    (gallery / "text.png").write_text("not an image")
    good = min(gallery.rglob("*.jpg")).read_bytes()
    (gallery / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (gallery / "bomb.png").write_bytes(png_bomb(100_000, 100_000))
    os.symlink(gallery, gallery / "album0" / "loop")
    before = gallery_state(gallery)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        res = engine.update([gallery])
        assert res.index.indexed == 5
        assert sum(res.index.skipped.values()) == 4, res.index.skipped
        assert res.index.skipped == {decode.EMPTY_FILE: 1, decode.NOT_AN_IMAGE: 1, decode.CORRUPT: 1,
                                     decode.DECOMPRESSION_BOMB: 1}
        assert engine.stats().failed == 4
        again = engine.update([gallery])  # skipped files are not retried until they change
        assert again.index.done == 0
        assert engine.store.retry_failed() == 4
    assert gallery_state(gallery) == before


def test_photo_deleted_or_replaced_while_being_indexed(tmp_path, make_gallery, fake_encoders, image_writer):
    gallery = make_gallery(6)
    photos = sorted(str(p) for p in gallery.rglob("*.*"))
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.scan([gallery])
        os.unlink(photos[0])  # after the scan, before indexing
        image_writer(photos[1], size=(30, 30), seed=77)  # replaced with new content
        report = engine.index()
        assert report.gone == 1 and report.indexed == 5
        # the store recorded what it actually encoded, so the replaced photo is up to date
        assert not engine.scan([gallery]).plan.has_changes
        q = fake_encoders.encode_images(decode.load_photo(photos[1], fake_encoders.preprocess).pixels[None])[0]
        assert engine.search_vector(q, 1)[0].path == photos[1]


def test_progress_cancel_and_resume(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(40)
    seen = []
    cancel = threading.Event()

    def progress(done, total):
        seen.append((done, total))
        if done >= 16:
            cancel.set()

    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.scan([gallery])
        first = engine.index(progress, cancel, batch_size=8)
        assert first.cancelled and first.indexed == 16 and seen[0] == (0, 40)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        second = engine.index(batch_size=8)
        assert not second.cancelled and second.indexed == 24
        assert engine.stats().indexed == 40 and engine.store.check() == []


def test_background_update_while_searching(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(30)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        job = engine.start_update([gallery], batch_size=4, throttle_s=0.01)
        counts = []
        while not job.done:
            counts.append(len(engine.search_text("blue", k=100)))
            time.sleep(0.005)
        report = job.wait()
        assert report.indexed == 30 and len(engine.search_text("blue", k=100)) == 30
        assert counts == sorted(counts)  # results only ever grow while indexing


def test_background_job_cancel_and_error(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(30)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        job = engine.start_update([gallery], batch_size=2, throttle_s=0.05)
        job.cancel()
        report = job.wait(timeout=30)
        assert report is not None and report.cancelled and engine.stats().pending > 0

        def broken(pixels):
            raise RuntimeError("accelerator lost")

        fake_encoders.encode_images = broken
        job = engine.start_update([gallery])
        with pytest.raises(RuntimeError, match="accelerator lost"):
            job.wait(timeout=30)
        assert engine.store.check() == []


def test_background_job_tells_its_scan_and_its_end(tmp_path, make_gallery, fake_encoders, image_writer):
    """An app follows a job through callbacks instead of a thread of its own: the scan, then exactly one end."""
    gallery = make_gallery(6)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        events = []
        job = engine.start_update([gallery], batch_size=2, on_scanned=lambda scan: events.append(("scan", scan)),
                                  on_finished=lambda report, error: events.append(("end", report, error)))
        report = job.wait(timeout=30)
        assert [e[0] for e in events] == ["scan", "end"] and len(events[0][1].plan.new) == 6
        assert events[1][1] is report and events[1][2] is None and report.indexed == 6

        def broken(pixels):
            raise RuntimeError("accelerator lost")

        image_writer(gallery / "new.png", seed=99)  # something to encode
        fake_encoders.encode_images = broken
        ends = []
        job = engine.start_update([gallery], on_finished=lambda report, error: ends.append((report, error)))
        with pytest.raises(RuntimeError):
            job.wait(timeout=30)
        assert len(ends) == 1 and ends[0][0] is None and "accelerator lost" in str(ends[0][1])


def test_update_can_retry_skipped_photos(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(3)
    (gallery / "broken.jpg").write_text("not a photo")
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        assert engine.stats().failed == 1
        assert engine.update([gallery]).index.done == 0  # a skipped photo is not tried again by itself
        again = engine.update([gallery], retry_failed=True)
        assert again.index.done == 1 and engine.stats().failed == 1


def test_similar_photos(tmp_path, make_gallery, fake_encoders, image_writer):
    gallery = make_gallery(10)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
        query = sorted(gallery.rglob("*.*"))[2]
        results = engine.search_image(query, k=3)
        assert len(results) == 3 and str(query) not in [r.path for r in results]
        outside = image_writer(tmp_path / "outside.png", seed=5)
        assert len(engine.search_image(outside, k=3)) == 3
        (tmp_path / "bad.jpg").write_text("nope")
        with pytest.raises(QueryError, match="cannot use"):
            engine.search_image(tmp_path / "bad.jpg")


def test_model_change_reindexes_cleanly(tmp_path, make_gallery, fake_encoders, fake_encoders_class):
    gallery = make_gallery(5)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    other = fake_encoders_class(dim=12, model_id="fake-v2")
    with pytest.raises(StoreError, match="built with model fake-v1"):
        SearchEngine(tmp_path / "data", other, readonly=True)
    with SearchEngine(tmp_path / "data", other) as engine:
        assert any("re-indexing" in n for n in engine.notes)
        assert engine.search_text("x", k=3) == []  # no stale embeddings of the old model
        engine.update([gallery])
        assert len(engine.search_text("x", k=10)) == 5 and engine.stats().embed_dim == 12


def test_corrupt_store_file_rebuilds_without_touching_the_gallery(tmp_path, make_gallery, fake_encoders, gallery_state):
    gallery = make_gallery(5)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery])
    for f in (tmp_path / "data").glob("index.sqlite*"):
        f.write_bytes(os.urandom(3000))
    before = gallery_state(gallery)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        assert any("unreadable" in n for n in engine.notes)
        engine.update([gallery])
        assert engine.stats().indexed == 5 and engine.store.check() == []
    assert gallery_state(gallery) == before


def test_store_reopens_consistent_after_each_step(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(9)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([gallery], batch_size=4)
    with EmbeddingStore(tmp_path / "data") as store:
        assert store.check() == [] and store.stats().indexed == 9


def test_close_stops_background_indexing(tmp_path, make_gallery, fake_encoders):
    gallery = make_gallery(30)
    engine = SearchEngine(tmp_path / "data", fake_encoders)
    job = engine.start_update([gallery], batch_size=1, throttle_s=0.05)
    time.sleep(0.1)
    engine.close()  # cancels, waits for the batch in flight, then closes the store
    report = job.wait()
    assert job.done and report.cancelled
    with EmbeddingStore(tmp_path / "data") as store:
        assert store.check() == [] and 0 < store.stats().indexed < 30


def test_photos_queued_behind_the_cursor_are_picked_up(tmp_path, make_gallery, fake_encoders, image_writer):
    """A scan running alongside the indexer re-queues a photo the indexer already passed: another pass gets it."""
    gallery = make_gallery(12)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.scan([gallery])
        first = min(gallery.rglob("*.*"))
        state = {"done": False}

        def progress(done, total):
            if done >= 8 and not state["done"]:  # past the first photo: change it and rescan now
                state["done"] = True
                image_writer(first, size=(40, 40), seed=4242)
                os.utime(first, ns=(time.time_ns() + 10**9,) * 2)
                engine.scan([gallery])

        report = engine.index(progress, batch_size=4)
        assert report.indexed == 13 and engine.store.count_pending() == 0
        assert not engine.scan([gallery]).plan.has_changes


def test_photos_are_decoded_on_every_core_by_default(tmp_path, fake_encoders, monkeypatch):
    from app.engine import indexer

    monkeypatch.setattr(indexer.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        assert engine.indexer().decode_workers == 8
        assert engine.indexer(decode_workers=3).decode_workers == 3


def test_a_phone_sized_search_never_wakes_the_blas_thread_pool(monkeypatch):
    """At 10k x 128 the product runs on the calling thread: BLAS's pool, asleep between queries, cost
    a scheduler slice per query under load (24 ms for a 0.1 ms product); a large matrix still uses BLAS."""
    from app.engine import search
    from app.engine.store import Snapshot

    rng = np.random.default_rng(0)
    small = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = small[3] / np.linalg.norm(small[3])

    def no_blas(matrix, query):
        raise AssertionError("the BLAS thread pool was used for a 10k-row search")

    monkeypatch.setattr(search, "blas_product", no_blas)
    snap = Snapshot(matrix=small, photo_ids=np.arange(10_000), dead_rows=np.empty(0, np.int64), live=10_000)
    rows, scores = search.top_k_rows(snap, q, 10)
    want = np.argsort(-(small @ q), kind="stable")[:10]
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_allclose(scores, (small @ q)[want], rtol=1e-5)
    monkeypatch.setattr(search, "SMALL_PRODUCT", 0)
    with pytest.raises(AssertionError, match="BLAS thread pool"):
        search.top_k_rows(snap, q, 10)
