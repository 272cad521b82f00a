"""The real app under Xvfb, used as a person would: choose a gallery, watch it index, search, add and delete photos.

The tests run in file order against one app (a Kivy window opens once per process): each starts
where the previous one left the app. The tiny run's student drives the gallery scenarios (its
retrieval is near chance, so they assert on what the app does, not on ranking quality); the last two
switch to the synthetic benchmark's model over the sample gallery (its captions find their photos) and
to the offline default's model over the default gallery, assets/real_gallery (descriptions find photos).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from app.engine import SearchResult
from app.platform import REAL_GALLERY, SAMPLE_GALLERY

REPO = Path(__file__).resolve().parents[2]
ADDED_NAME = "added-while-running.png"


def search_screen(driver):
    return driver.app.screen("search")


def type_query(driver, text: str) -> None:
    """Type ``text`` in the search box and press Enter."""
    screen = driver.app.show("search")
    box = screen.ids.query
    box.text = text
    box.dispatch("on_text_validate")
    driver.frame()


def wait_for_results(driver, what: str, timeout: float = 60.0) -> list[dict]:
    screen = search_screen(driver)
    driver.wait_for(lambda: not screen.searching and bool(screen.ids.grid.data), timeout, what)
    return list(screen.ids.grid.data)


def wait_until_indexed(driver, timeout: float = 120.0) -> None:
    app = driver.app
    driver.wait_for(lambda: not app.indexing and not app.controller.is_indexing
                    and app.index_status.startswith("Up to date"), timeout, "indexing to finish")


def visible_tiles(driver) -> list:
    from app.widgets.thumbnail import ThumbnailTile

    layout = search_screen(driver).ids.grid.layout_manager
    return [w for w in layout.children if isinstance(w, ThumbnailTile)]


def test_without_a_gallery_the_search_screen_says_to_choose_one(running_app):
    driver, app = running_app, running_app.app
    driver.wait_for(lambda: app.model_ready, 120, "the model to load")
    screen = search_screen(driver)
    driver.wait_for(lambda: screen.empty_state is not None and screen.empty_state.kind == "no-gallery", 10,
                    "the no-gallery empty state")
    empty = screen.ids.empty
    assert empty.opacity == 1 and screen.ids.grid.opacity == 0
    assert empty.ids.title.text == "No gallery chosen"
    assert "Settings" in empty.ids.hint.text
    driver.screenshot("empty_state")


def test_indexing_progress_advances_and_completes_on_a_fresh_gallery(running_app, ui_gallery):
    driver, app = running_app, running_app.app
    gallery, entries = ui_gallery
    settings = app.show("settings")
    driver.frame()
    settings.ids.new_folder.text = str(gallery)
    driver.tap(settings.ids.add_button)
    assert app.galleries == [str(gallery)]
    indexing = app.show("indexing")
    bar = indexing.ids.bar
    seen: list[tuple[float, float]] = []
    shot: list[Path] = []

    def watch() -> None:
        seen.append((bar.value, bar.max))
        if not shot and app.indexing and 0 < bar.value < bar.max:
            shot.append(driver.screenshot("indexing_in_progress"))

    gaps_before = len(driver.frame_gaps)
    driver.wait_for(lambda: not app.indexing and app.stats.indexed == len(entries), 120,
                    "the gallery to be indexed", on_frame=watch)
    values = [v for v, _ in seen]
    assert values == sorted(values), "the progress bar went backwards"
    assert len({v for v in values if 0 < v < len(entries)}) >= 3, f"no visible progress: {sorted(set(values))}"
    assert bar.value == bar.max == len(entries)
    assert indexing.ids.counts.text == f"{len(entries)} / {len(entries)} photos"
    assert indexing.ids.new_photos.text == f"{len(entries)} new photos found"
    assert "photos/s" in indexing.ids.rate.text
    assert shot, "no frame showed indexing in progress"
    longest = max(driver.frame_gaps[gaps_before:])
    assert longest < 2.0, f"the UI thread was blocked for {longest:.2f}s while indexing"


def test_typed_query_shows_a_grid_of_thumbnails_with_scores(running_app, ui_gallery):
    driver, app = running_app, running_app.app
    _, entries = ui_gallery
    caption = entries[0]["sentences"][0]["raw"]
    type_query(driver, caption)
    data = wait_for_results(driver, "search results")
    assert len(data) == min(24, len(entries))
    scores = [d["score"] for d in data]
    assert scores == sorted(scores, reverse=True)
    assert [d["rank"] for d in data] == list(range(1, len(data) + 1))
    assert search_screen(driver).header.startswith(f"{len(data)} photos for")
    driver.wait_for(lambda: visible_tiles(driver) and all(t.thumb_state == "ready" for t in visible_tiles(driver)),
                    30, "the thumbnails of the visible results")
    first = min(visible_tiles(driver), key=lambda t: t.rank)
    assert first.photo == data[0]["photo"]
    assert first.ids.caption.text == f"#1  {data[0]['score']:.3f}"
    assert Path(first.thumb_source).is_file() and str(app.data_dir) in first.thumb_source  # cached in the data dir
    assert app.first_results_seconds > 0
    driver.screenshot("search_results_tiny_model")


def test_a_photo_opens_full_screen_and_finds_similar_photos(running_app):
    driver, app = running_app, running_app.app
    first = min(visible_tiles(driver), key=lambda t: t.rank)
    opened = first.photo  # the tile widget is reused for other results later
    driver.tap(first)
    photo = app.manager.current_screen
    assert app.manager.current == "photo" and photo.photo == opened
    driver.wait_for(lambda: photo.image_state == "ready", 20, "the full-screen image")
    driver.screenshot("photo_full_screen")
    driver.tap(photo.ids.similar_button)
    data = wait_for_results(driver, "similar photos")
    assert app.manager.current == "search"
    assert opened not in [d["photo"] for d in data]  # the query photo itself is not a result
    assert search_screen(driver).header.endswith(f"similar to {os.path.basename(opened)}")


def test_a_photo_added_while_the_app_runs_is_found_after_the_next_scan(running_app, ui_gallery):
    driver, app = running_app, running_app.app
    gallery, entries = ui_gallery
    original = gallery / entries[0]["filename"]
    added = gallery / "new" / ADDED_NAME
    added.parent.mkdir()
    shutil.copyfile(original, added)  # the same picture under a new name: its twin must be its best match
    indexing = app.show("indexing")
    driver.tap(indexing.ids.scan_button)
    driver.wait_for(lambda: indexing.ids.new_photos.text == "1 new photo found", 30, "the scan to find the photo")
    wait_until_indexed(driver)
    assert app.stats.indexed == len(entries) + 1
    app.open_photo(str(original), 0.0)
    driver.tap(app.manager.current_screen.ids.similar_button)
    data = wait_for_results(driver, "photos similar to the original")
    assert data[0]["photo"] == str(added)
    assert data[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_a_deleted_photo_disappears_after_the_next_scan(running_app, ui_gallery):
    driver, app = running_app, running_app.app
    gallery, entries = ui_gallery
    added = gallery / "new" / ADDED_NAME
    added.unlink()
    indexing = app.show("indexing")
    driver.tap(indexing.ids.scan_button)
    driver.wait_for(lambda: indexing.ids.new_photos.text == "1 removed", 30, "the scan to notice the deletion")
    wait_until_indexed(driver)
    assert app.stats.indexed == len(entries)
    app.open_photo(str(gallery / entries[0]["filename"]), 0.0)
    driver.tap(app.manager.current_screen.ids.similar_button)
    data = wait_for_results(driver, "photos similar to the original")
    assert str(added) not in [d["photo"] for d in data]
    type_query(driver, "a photo")
    data = wait_for_results(driver, "search results")
    assert str(added) not in [d["photo"] for d in data]


def test_an_unreadable_photo_shows_a_placeholder_and_never_stops_indexing(running_app, ui_gallery):
    driver, app = running_app, running_app.app
    gallery, entries = ui_gallery
    broken = gallery / "new" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a picture")
    good = gallery / "new" / "good.png"
    shutil.copyfile(gallery / entries[1]["filename"], good)
    try:
        app.refresh()
        indexing = app.show("indexing")
        driver.wait_for(lambda: indexing.ids.new_photos.text == "2 new photos found", 30, "the scan")
        wait_until_indexed(driver)
        assert app.stats.indexed == len(entries) + 1 and app.stats.skipped == 1
        assert "1 unreadable skipped" in indexing.ids.status.text
        # a result whose file cannot be decoded: its tile shows the placeholder, the others their thumbnails
        screen = app.show("search")
        screen.show_results("text", "broken", [SearchResult(str(broken), 0.5, -1),
                                               SearchResult(str(good), 0.4, -2)])
        driver.wait_for(lambda: {t.photo: t.thumb_state for t in visible_tiles(driver)}
                        == {str(broken): "failed", str(good): "ready"}, 20, "the placeholder")
        app.open_photo(str(broken), 0.5)
        photo = app.manager.current_screen
        driver.wait_for(lambda: photo.image_state == "failed", 20, "the photo view's placeholder")
        app.back()
    finally:
        broken.unlink()
        good.unlink()
        app.refresh()
        wait_until_indexed(driver)


def _model(name: str, backends: tuple[str, ...], assembled: bool) -> Path | None:
    """The first of bundles/<name>-<backend> exported, else runs/<name> if it holds a student of the expected
    kind (a clip art student or not), else None."""
    from formats.run_card import is_assembled_run

    for backend in backends:
        if (REPO / "bundles" / f"{name}-{backend}" / "manifest.json").is_file():
            return REPO / "bundles" / f"{name}-{backend}"
    run = REPO / "runs" / name
    return run if (run / "student.json").is_file() and is_assembled_run(run) == assembled else None


def test_benchmark_captions_find_their_photos_with_the_synthetic_model(running_app, tmp_path, capsys):
    """The synthetic benchmark's model over the sample gallery (the benchmark's first 60 test photos).

    Launch on an index built earlier, type a caption right away, and time the first results:
    the cold start (bundle load + first search).
    """
    model = _model("synthetic", ("executorch",), assembled=False)  # make run-synthetic
    if model is None:
        pytest.skip("the synthetic benchmark's model is missing (bundles/synthetic-executorch or runs/synthetic/"
                    "student.json): run `make run-synthetic` and `python -m export.executorch --checkpoint runs/synthetic`")
    driver, app = running_app, running_app.app
    gallery = SAMPLE_GALLERY  # explicitly: the default gallery is the real one, which this model does not know
    entries = json.loads((gallery / "dataset_synthetic.json").read_text())["images"]
    app.open_library(model, [str(gallery)], data_dir=tmp_path)
    driver.wait_for(lambda: app.model_ready and app.stats.indexed == len(entries) and not app.indexing, 180,
                    "the sample gallery to be indexed")
    app.open_library(model, [str(gallery)], data_dir=tmp_path)  # launch again: the index is already there
    caption = entries[0]["sentences"][0]["raw"]
    type_query(driver, caption)  # typed before the model is loaded: answered as soon as it is
    data = wait_for_results(driver, "the first results", timeout=120)
    driver.wait_for(lambda: app.first_results_seconds > 0, 10, "the cold-start time")
    cold = app.first_results_seconds
    ranks = {}
    for entry in entries[:5]:
        text = entry["sentences"][0]["raw"]
        if text != caption:
            type_query(driver, text)
            driver.wait_for(lambda t=text: search_screen(driver).query == t and not search_screen(driver).searching,
                            30, "results")
            data = list(search_screen(driver).ids.grid.data)
        else:
            driver.wait_for(lambda: all(t.thumb_state == "ready" for t in visible_tiles(driver)), 30, "thumbnails")
            shot = driver.screenshot("search_results")
        paths = [Path(d["photo"]).name for d in data]
        ranks[text] = paths.index(entry["filename"]) + 1 if entry["filename"] in paths else None
    report = {"model": str(model), "cold_start_seconds": round(cold, 3), "load_seconds": round(app.load_seconds, 3),
              "ranks": ranks, "screenshot": str(shot)}
    (shot.parent / "benchmark_search.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print(f"\ncold start (model load + first search, results on screen): {cold:.2f}s; "
              f"model + index opened in {app.load_seconds:.2f}s; ranks of the expected photo: {list(ranks.values())}")
    assert ranks[caption] is not None and ranks[caption] <= 10, report
    assert sum(r is not None and r <= 10 for r in ranks.values()) >= 4, report


SHORT_QUERIES = {  # plain short queries: measured and recorded, not asserted (one rank each: anecdotes)
    "a cat": "chelsea.jpg",
    "an astronaut": "astronaut.jpg",
    "a cup of coffee": "coffee.jpg",
    "a rocket launch": "rocket.jpg",
    "a motorbike": "motorcycle_left.jpg",
}
SCREENSHOT_QUERY = "an old woman in a navy uniform with glasses and a cap"  # grace_hopper.jpg's description


def test_typed_descriptions_find_real_photos_with_the_offline_model(running_app, tmp_path, capsys):
    """The offline default (the clip art student) over the desktop's default gallery, assets/real_gallery: the
    project's 19 real photos among 40 clip art test drawings. The project's descriptions of the photos should
    find them; short plain queries are recorded; the screenshot is the README's."""
    model = _model("offline", ("onnx", "executorch"), assembled=True)  # make run: the clip art student
    if model is None:
        pytest.skip("the offline default's clip art model is missing (bundles/offline-onnx or runs/offline): "
                    "run `make run` (and `python -m export.onnx`) first")
    pictures = len(REAL_GALLERY.joinpath("captions.tsv").read_text().splitlines())
    driver, app = running_app, running_app.app
    app.open_library(model, [], data_dir=tmp_path / "data")
    driver.wait_for(lambda: app.model_ready, 120, "the offline model to load")
    app.set_galleries([str(REAL_GALLERY)])  # as Settings adds a folder
    try:
        driver.wait_for(lambda: app.model_ready and app.stats.indexed == pictures and not app.indexing, 180,
                        "the real gallery to be indexed")
    except AssertionError as e:
        raise AssertionError(f"{e}: model_ready={app.model_ready} model_error={app.model_error!r} "
                             f"indexing={app.indexing} stats={app.stats} status={app.index_status!r}") from None
    rows = [line.split("\t") for line in REAL_GALLERY.joinpath("captions.tsv").read_text().splitlines()]
    described = {caption: Path(path).name for path, caption in rows if path.startswith("photos/")}

    def rank(text: str, photo: str) -> int | None:
        type_query(driver, text)
        driver.wait_for(lambda: search_screen(driver).query == text and not search_screen(driver).searching
                        and bool(search_screen(driver).ids.grid.data), 60, "results")
        names = [Path(d["photo"]).name for d in search_screen(driver).ids.grid.data]
        return names.index(photo) + 1 if photo in names else None

    ranks = {text: rank(text, photo) for text, photo in described.items()}
    short = {text: rank(text, photo) for text, photo in SHORT_QUERIES.items()}
    assert rank(SCREENSHOT_QUERY, "grace_hopper.jpg") is not None
    driver.wait_for(lambda: all(t.thumb_state == "ready" for t in visible_tiles(driver)), 30, "thumbnails")
    shot = driver.screenshot("search_real_pictures")
    (shot.parent / "real_pictures_search.json").write_text(json.dumps(
        {"model": str(model), "pictures": pictures, "described_photo_ranks": ranks, "short_query_ranks": short},
        indent=2))
    with capsys.disabled():
        print(f"\nreal gallery ({pictures} pictures): ranks of the 19 photos by their descriptions {list(ranks.values())}; "
              f"short queries {short}")
    # the project's own descriptions of the 19 photos (never trained on): measured 14 of 19 in the top 5 with the
    # ConSE channel (9 before it)
    assert len(ranks) == 19 and sum(r is not None and r <= 5 for r in ranks.values()) >= 11, ranks
