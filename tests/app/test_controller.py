"""The controller without Kivy: engine work runs on worker threads, every answer is posted to the UI thread."""
from __future__ import annotations

import queue
import shutil
import threading
import time

import pytest

from app.controller import AppController


class Recorder:
    """A LibraryListener that records events and checks they arrive on the (test's) UI thread."""

    def __init__(self):
        self.events: list[tuple[str, object]] = []
        self.ui_thread = threading.current_thread()

    def _record(self, name: str, value: object) -> None:
        assert threading.current_thread() is self.ui_thread, f"{name} delivered off the UI thread"
        self.events.append((name, value))

    def library_opened(self, library):
        self._record("opened", library)

    def library_failed(self, message):
        self._record("failed", message)

    def scan_finished(self, scan):
        self._record("scan", scan)

    def index_progress(self, progress):
        self._record("progress", progress)

    def index_finished(self, outcome):
        self._record("finished", outcome)

    def last(self, name: str):
        return [v for n, v in self.events if n == name][-1]


class UIQueue:
    """Stands in for Kivy's main loop: ``post`` queues a function, the test's thread runs them."""

    def __init__(self):
        self._posted: queue.Queue = queue.Queue()
        self.post = self._posted.put

    def run_until(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            try:
                self._posted.get(timeout=max(0.01, deadline - time.monotonic()))()
            except queue.Empty:
                raise AssertionError("timed out waiting on the controller") from None

    def drain(self) -> None:
        while True:
            try:
                self._posted.get_nowait()()
            except queue.Empty:
                return


@pytest.fixture
def ui_queue() -> UIQueue:
    return UIQueue()


def test_open_scan_index_search_and_rescan(tiny_run, ui_gallery, tmp_path, ui_queue):
    post, run_until = ui_queue.post, ui_queue.run_until
    _, root, _ = tiny_run
    gallery, entries = ui_gallery
    mine = tmp_path / "gallery"
    shutil.copytree(gallery, mine)
    listener = Recorder()
    controller = AppController(post, listener, batch_size=8)
    try:
        controller.open(root / "runs" / "tiny", tmp_path / "data", [str(mine)])
        run_until(lambda: any(n == "finished" for n, _ in listener.events))
        names = [n for n, _ in listener.events]
        assert names[0] == "opened" and names[1] == "scan" and names[-1] == "finished"
        assert listener.last("opened").model.backend == "torch"
        scan = listener.last("scan")
        assert (scan.new, scan.first) == (len(entries), True)
        progress = [v for n, v in listener.events if n == "progress"]
        assert [p.done for p in progress] == sorted(p.done for p in progress)
        assert progress[-1].done == progress[-1].total == len(entries)
        outcome = listener.last("finished")
        assert outcome.error is None and outcome.stats.indexed == len(entries) and outcome.stats.index_bytes > 0

        answers: list = []
        stale = controller.search("a red circle", 5, answers.append, answers.append)
        latest = controller.search(entries[0]["sentences"][0]["raw"], 5, answers.append, answers.append)
        assert latest == stale + 1
        run_until(lambda: bool(answers))
        time.sleep(0.2)
        ui_queue.drain()  # the superseded query must not have been answered
        assert len(answers) == 1 and len(answers[0]) == 5

        errors: list[str] = []
        controller.search("   ", 5, answers.append, errors.append)
        run_until(lambda: bool(errors))
        assert "empty" in errors[0].lower()

        (mine / entries[0]["filename"]).unlink()
        listener.events.clear()
        controller.refresh()
        run_until(lambda: any(n == "finished" for n, _ in listener.events))
        scan = listener.last("scan")
        assert (scan.deleted, scan.new, scan.first) == (1, 0, False)
        assert listener.last("finished").stats.indexed == len(entries) - 1
    finally:
        controller.close()


def test_a_missing_model_is_reported_not_raised(tmp_path, ui_queue):
    post, run_until = ui_queue.post, ui_queue.run_until
    listener = Recorder()
    controller = AppController(post, listener)
    try:
        controller.open(tmp_path / "no-model", tmp_path / "data", [])
        run_until(lambda: bool(listener.events))
        assert listener.events[0][0] == "failed" and "no-model" in listener.events[0][1]
    finally:
        controller.close()


def test_cancel_stops_indexing_and_the_next_scan_resumes(tiny_run, ui_gallery, tmp_path, ui_queue):
    _, root, _ = tiny_run
    gallery, entries = ui_gallery
    listener = Recorder()
    controller = AppController(ui_queue.post, listener, batch_size=4, throttle_s=0.2)
    try:
        controller.open(root / "runs" / "tiny", tmp_path / "data", [str(gallery)])
        ui_queue.run_until(lambda: any(n == "progress" and v.done >= 4 for n, v in listener.events))
        controller.cancel_indexing()
        ui_queue.run_until(lambda: any(n == "finished" for n, _ in listener.events))
        outcome = listener.last("finished")
        assert outcome.report.cancelled and 0 < outcome.stats.indexed < len(entries)
        assert outcome.stats.indexed + outcome.stats.pending == len(entries)
        listener.events.clear()
        controller.throttle_s = 0.0
        controller.refresh()
        ui_queue.run_until(lambda: any(n == "finished" for n, _ in listener.events))
        assert listener.last("finished").stats.indexed == len(entries)
        assert listener.last("scan").new == 0  # nothing new: the photos left were still pending
    finally:
        controller.close()


class _Encoders:
    """Just enough of an Encoders for the controller to open a library; ``fail`` breaks image encoding."""

    backend, model_id, embed_dim, image_batch_size = "test", "test-fp32", 4, 8

    def __init__(self, fail: BaseException | None = None):
        import numpy as np

        from app.engine.decode import ImagePreprocess
        from app.engine.tokenizer import QueryTokenizer

        self._np, self._fail = np, fail
        self.preprocess = ImagePreprocess(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.tokenizer = QueryTokenizer(lambda texts: np.array([[1, 5, 9, 0]] * len(texts)), 4)

    def encode_images(self, pixels):
        if self._fail is not None:
            raise self._fail
        return self._np.ones((len(pixels), self.embed_dim), self._np.float32) / 2

    def describe(self) -> str:
        return "test encoders"

    def close(self) -> None:
        pass


def _gallery(folder):
    from PIL import Image

    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20 + i, 12), (40 * i, 90, 200)).save(folder / f"p{i}.png")
    return folder


@pytest.mark.parametrize("error", [ImportError("No module named 'regex'"), RuntimeError("JavaException: ClassNotFound")])
def test_any_model_load_failure_reaches_the_ui(tmp_path, ui_queue, error):
    """iOS without regex, Android's Java exceptions: the UI is told, instead of 'Loading the model...' for ever."""
    def load(path, verify=True, threads=None):
        raise error

    listener = Recorder()
    controller = AppController(ui_queue.post, listener, load_model=load)
    try:
        controller.open(tmp_path / "bundle", tmp_path / "data", [])
        ui_queue.run_until(lambda: bool(listener.events), timeout=10)
        name, message = listener.events[0]
        assert name == "failed" and type(error).__name__ in message and str(error) in message
        assert "\n" not in message
    finally:
        controller.close()


def test_an_indexing_crash_reaches_the_ui(tmp_path, ui_queue):
    """An unexpected exception in the indexer thread ends indexing with an error the UI shows."""
    listener = Recorder()
    controller = AppController(ui_queue.post, listener, load_model=lambda *a, **k: _Encoders(AttributeError("Resampling")))
    try:
        controller.open(tmp_path / "bundle", tmp_path / "data", [str(_gallery(tmp_path / "g"))])
        ui_queue.run_until(lambda: any(n == "finished" for n, _ in listener.events), timeout=20)
        outcome = listener.last("finished")
        assert outcome.error is not None and "AttributeError: Resampling" in outcome.error
    finally:
        controller.close()


def test_a_superseded_similar_query_is_neither_run_nor_answered(tmp_path, ui_queue):
    """A similar-photos request overtaken by a newer search must not run (it may decode a large photo)
    nor answer: not even its error may reach the UI, which shows the newer query by then."""
    gate = threading.Event()
    encoded: list[int] = []  # batch sizes of image encodes

    class Encoders(_Encoders):

        def encode_tokens(self, tokens):
            gate.wait(30)  # holds the engine worker on the first search until every request is queued
            return self._np.ones((len(tokens), self.embed_dim), self._np.float32) / 2

        def encode_images(self, pixels):
            encoded.append(len(pixels))
            return super().encode_images(pixels)

    listener = Recorder()
    controller = AppController(ui_queue.post, listener, load_model=lambda *a, **k: Encoders())
    try:
        controller.open(tmp_path / "bundle", tmp_path / "data", [str(_gallery(tmp_path / "g"))])
        ui_queue.run_until(lambda: any(n == "finished" for n, _ in listener.events), timeout=20)
        encoded.clear()
        (tmp_path / "broken.jpg").write_text("not a photo")
        outside = _gallery(tmp_path / "outside") / "p0.png"
        answers: list = []
        errors: list[str] = []
        controller.search("first", 3, answers.append, errors.append)
        controller.similar(str(outside), 3, answers.append, errors.append)
        controller.similar(str(tmp_path / "broken.jpg"), 3, answers.append, errors.append)
        latest = controller.search("latest", 3, lambda r: answers.append(("latest", r)), errors.append)
        gate.set()
        ui_queue.run_until(lambda: bool(answers), timeout=20)
        controller.stats(lambda s: answers.append("stats"))  # the worker runs in order: after this, all is in
        ui_queue.run_until(lambda: answers[-1] == "stats", timeout=20)
        assert latest > 0 and answers[0][0] == "latest" and len(answers) == 2
        assert errors == [] and encoded == []
    finally:
        gate.set()
        controller.close()


def test_a_refresh_during_indexing_scans_again_after_it(tmp_path, ui_queue):
    """Photos added while a run is going are found by the scan the refresh queued, which starts as the run ends."""
    listener = Recorder()
    controller = AppController(ui_queue.post, listener, batch_size=1, throttle_s=0.1,
                               load_model=lambda *a, **k: _Encoders())
    gallery = _gallery(tmp_path / "g")
    try:
        controller.open(tmp_path / "bundle", tmp_path / "data", [str(gallery)])
        ui_queue.run_until(lambda: any(n == "progress" for n, _ in listener.events), timeout=20)
        assert controller.is_indexing
        from PIL import Image

        Image.new("RGB", (30, 14), (1, 2, 3)).save(gallery / "later.png")
        controller.refresh()
        controller.refresh()  # several requests during a run make one more scan
        ui_queue.run_until(lambda: [n for n, _ in listener.events].count("finished") == 2, timeout=30)
        ui_queue.run_until(lambda: not controller.is_indexing, timeout=10)
        time.sleep(0.3)
        ui_queue.drain()
        names = [n for n, _ in listener.events if n != "progress"]
        assert names == ["opened", "scan", "finished", "scan", "finished"]
        scans = [v for n, v in listener.events if n == "scan"]
        assert (scans[0].new, scans[0].first) == (3, True) and (scans[1].new, scans[1].first) == (1, False)
        outcome = listener.last("finished")
        assert outcome.error is None and outcome.stats.indexed == 4
    finally:
        controller.close()
