"""Thin glue between the UI and the engine: every engine call runs off the UI thread, every answer comes back on it.

The controller imports no Kivy. It is given ``post(fn)``, a function that runs ``fn()`` on the UI
thread later (the app passes one built on ``Clock.schedule_once``; tests may pass a queue), and a
:class:`~app.library_events.LibraryListener` for the events of the library's life (opened, scanned, indexing
progress, indexed; their values are in :mod:`app.library_events`). Requests (search, similar photos,
thumbnails, statistics) take their own callbacks.

Threads: one "engine" worker runs opening and queries in order, the engine's background update
(:meth:`SearchEngine.start_update`) scans and indexes (so a search is answered while photos are still
being indexed), and two "thumbs" workers make thumbnails. Nothing here decides *what* to do with a photo: that is the engine's business.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from app.engine import (
    IndexJob,
    IndexReport,
    ModelLoadError,
    QueryError,
    ScanResult,
    SearchEngine,
    SearchResult,
    StoreError,
)
from app.library_events import (
    IndexOutcome,
    IndexProgress,
    LibraryListener,
    LibraryStats,
    OpenedLibrary,
    ScanSummary,
    unexpected_failure,
)
from app.model_info import ModelInfo, ModelInfoError, read_model_info
from app.platform import ModelLoader, detect_platform, model_loader
from app.thumbnails import GRID_SIZE, ThumbnailCache, folder_bytes

logger = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]

THUMBNAIL_DIR = "thumbnails"


class AppController:
    """Runs the engine for the UI. ``open`` first; everything else answers through callbacks on the UI thread."""

    def __init__(self, post: Post, listener: LibraryListener, batch_size: int | None = None,
                 decode_workers: int = 1, throttle_s: float = 0.0, torch_threads: int = 1,
                 load_model: ModelLoader | None = None):
        self._post = post
        self._listener = listener
        self.batch_size = batch_size  # photos per indexing batch (None: the runtime's preference)
        self.decode_workers = decode_workers
        self.throttle_s = throttle_s  # pause after each batch: spares a phone's battery; lets tests watch progress
        self.torch_threads = torch_threads
        self._load_model = load_model or model_loader(detect_platform())
        self._engine_pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._thumb_pool = ThreadPoolExecutor(2, thread_name_prefix="thumbs")
        self._engine: SearchEngine | None = None
        self._thumbs: ThumbnailCache | None = None
        self._galleries: list[str] = []
        self._lock = threading.Lock()  # guards the indexing state below
        self._job: IndexJob | None = None  # the engine's latest background update
        self._indexing = False  # from a run's start until the last run of a chain of rescans has told its end
        self._rescan = False  # a refresh came in during a run: another follows it
        self._retry_skipped = False
        self._first_scan = True
        self._search_seq = 0
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def _deliver(self, fn: Callable[[], None]) -> None:
        if not self._closed:
            self._post(fn)

    def _submit(self, fn: Callable[[], None]) -> Future | None:
        if self._closed:
            return None
        return self._engine_pool.submit(self._guard, fn)

    @staticmethod
    def _guard(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a worker must never die silently: the failure is logged with its traceback
            logger.exception("background task failed")

    @property
    def galleries(self) -> list[str]:
        return list(self._galleries)

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def is_indexing(self) -> bool:
        return self._indexing

    def _stats(self, engine: SearchEngine | None = None) -> LibraryStats:
        engine = self._engine if engine is None else engine
        if engine is None:
            return LibraryStats()
        st = engine.stats()
        return LibraryStats(
            photos=st.photos, indexed=st.indexed, pending=st.pending, skipped=st.failed,
            index_bytes=folder_bytes(engine.data_dir, skip=THUMBNAIL_DIR),
            thumbnail_bytes=self._thumbs.size_bytes() if self._thumbs else 0,
        )

    # ------------------------------------------------------------------ opening

    def open(self, model: str | Path, data_dir: str | Path, galleries: list[str]) -> None:
        """Load the model and open the index in ``data_dir`` (off the UI thread), then scan ``galleries``
        and index what is new in the background. Calling it again switches to another model/index."""
        self._galleries = [str(g) for g in galleries]
        self._submit(lambda: self._open(Path(model), Path(data_dir)))

    def _open(self, model: Path, data_dir: Path) -> None:
        self._close_engine()
        start = time.perf_counter()
        try:
            encoders = self._load_model(model, threads=self.torch_threads)
            engine = SearchEngine(data_dir, encoders)
        except (ModelLoadError, StoreError) as e:
            logger.error("cannot open the library: %s", e)
            message = str(e)
            self._deliver(lambda: self._listener.library_failed(message))
            return
        except Exception as e:  # a bug or a platform failure (ImportError, a Java exception): still told, and logged whole
            logger.exception("the model could not be loaded from %s", model)
            message = unexpected_failure("the model could not be loaded", e)
            self._deliver(lambda: self._listener.library_failed(message))
            return
        self._engine = engine
        self._thumbs = ThumbnailCache(engine.data_dir / THUMBNAIL_DIR, engine.limits)
        try:
            info: ModelInfo | None = read_model_info(model)
        except ModelInfoError as e:
            logger.warning("no model description: %s", e)
            info = None
        opened = OpenedLibrary(info, encoders.describe(), time.perf_counter() - start, self._stats(),
                               list(engine.notes))
        logger.info("library open in %.2fs: %s, %d photos indexed", opened.load_seconds,
                    opened.model_description, opened.stats.indexed)
        self._deliver(lambda: self._listener.library_opened(opened))
        self._first_scan = True
        self.refresh()

    # ------------------------------------------------------------------ scanning and indexing

    def set_galleries(self, galleries: list[str]) -> None:
        """Make ``galleries`` the complete set of gallery folders and rescan (photos outside them leave the index)."""
        self._galleries = [str(g) for g in galleries]
        self.refresh()

    def refresh(self, retry_skipped: bool = False) -> None:
        """Scan the galleries for new, changed, moved and deleted photos and index them, in the background.

        While a run is going, the request is remembered and a new scan follows it.
        """
        if self._engine is None or self._closed:
            return
        with self._lock:
            self._retry_skipped = self._retry_skipped or retry_skipped
            if self._indexing:
                self._rescan = True
                return
            self._start_update()

    def cancel_indexing(self) -> None:
        """Stop indexing after the batch in flight; what was indexed stays, the rest waits for the next run."""
        with self._lock:
            self._rescan = False
            job = self._job
        if job is not None:
            job.cancel()

    def _start_update(self) -> None:
        """Start the engine's background update (``self._lock`` held)."""
        engine = self._engine
        if engine is None or self._closed:
            self._indexing = False
            return
        retry, self._retry_skipped = self._retry_skipped, False
        self._rescan = False
        self._indexing = True
        try:
            self._job = engine.start_update(
                self._galleries, self._progress_poster(), self.batch_size, self.decode_workers, self.throttle_s,
                retry_failed=retry, on_scanned=self._scanned,
                on_finished=lambda report, error: self._update_finished(engine, report, error))
        except Exception as e:  # e.g. no thread can be started: told, not "Indexing..." for ever
            logger.exception("indexing could not start")
            self._indexing = False
            outcome = IndexOutcome(None, self._stats(engine), unexpected_failure("indexing could not start", e))
            self._deliver(lambda: self._listener.index_finished(outcome))

    def _scanned(self, scan: ScanResult) -> None:
        """On the indexing thread, between the scan and the indexing."""
        summary = ScanSummary(scan.report.files, len(scan.plan.new), len(scan.plan.changed),
                              len(scan.plan.moved), len(scan.plan.deleted), list(scan.report.unavailable),
                              first=self._first_scan)
        self._first_scan = False
        self._deliver(lambda: self._listener.scan_finished(summary))

    def _update_finished(self, engine: SearchEngine, report: IndexReport | None, error: BaseException | None) -> None:
        """On the indexing thread when a run ends, however it ends: the UI is always told (the engine logged
        the traceback of a failure); then the rescan asked for meanwhile starts."""
        message: str | None = None
        if isinstance(error, (StoreError, OSError)):
            message = str(error)
        elif error is not None:  # a bug must not leave the UI waiting on "Indexing..." for ever
            message = unexpected_failure("an unexpected error", error)
        try:
            stats = self._stats(engine)
        except Exception as e:
            logger.exception("cannot read the index after indexing")
            stats = LibraryStats()
            message = message or unexpected_failure("the index could not be read", e)
        outcome = IndexOutcome(report, stats, message)
        self._deliver(lambda: self._listener.index_finished(outcome))
        with self._lock:
            if self._rescan and self._engine is engine:
                self._start_update()
            else:
                self._indexing = False

    def _close_engine(self) -> None:
        """Stop indexing (after its batch in flight) and release the index; no rescan starts on it."""
        with self._lock:
            engine, self._engine = self._engine, None
            self._rescan = False
            job = self._job
        if job is not None:
            job.cancel()
        if engine is not None:
            engine.close()  # waits for its background update, whose end the UI is told

    def _progress_poster(self) -> Callable[[int, int], None]:
        start = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if done < total and now - last[0] < 0.05:
                return  # at most 20 updates a second reach the UI; the last one always does
            last[0] = now
            elapsed = now - start
            update = IndexProgress(done, total, done / elapsed if elapsed > 0 else 0.0)
            self._deliver(lambda: self._listener.index_progress(update))

        return progress

    # ------------------------------------------------------------------ queries

    def search(self, query: str, k: int, on_results: Callable[[list[SearchResult]], None],
               on_error: Callable[[str], None]) -> int:
        """Text search off the UI thread. Returns the request's number.

        A request superseded by a newer search or similar-photos request is dropped: it does not run if
        it is still waiting, and neither its results nor its error reach the UI.
        """
        return self._query(lambda engine: engine.search_text(query, k), on_results, on_error)

    def similar(self, photo: str, k: int, on_results: Callable[[list[SearchResult]], None],
                on_error: Callable[[str], None]) -> int:
        """Photos most similar to ``photo``, off the UI thread (superseded like :meth:`search`)."""
        return self._query(lambda engine: engine.search_image(photo, k), on_results, on_error)

    def _query(self, ask: Callable[[SearchEngine], list[SearchResult]],
               on_results: Callable[[list[SearchResult]], None], on_error: Callable[[str], None]) -> int:
        self._search_seq += 1
        seq = self._search_seq

        def current() -> bool:
            return seq == self._search_seq

        def answer(fn: Callable[[], None]) -> None:
            self._deliver(lambda: fn() if current() else None)  # checked again on the UI thread

        def run() -> None:
            if not current():
                return  # a newer query came in while this one waited
            engine = self._engine
            if engine is None:
                answer(lambda: on_error("the model is still loading"))
                return
            try:
                results = ask(engine)
            except (QueryError, StoreError) as e:
                message = str(e)
                answer(lambda: on_error(message))
                return
            except Exception as e:  # a bug must not leave the UI waiting on "Searching...": told, and logged whole
                logger.exception("the query failed")
                message = unexpected_failure("the search failed", e)
                answer(lambda: on_error(message))
                return
            answer(lambda: on_results(results))

        self._submit(run)
        return seq

    def thumbnail(self, photo: str, on_ready: Callable[[str, Path | None], None], max_side: int = GRID_SIZE) -> None:
        """``on_ready(photo, path or None)`` on the UI thread once the thumbnail exists (None: show a placeholder)."""
        thumbs = self._thumbs
        if thumbs is None or self._closed:
            return

        def run() -> None:
            path = thumbs.get(photo, max_side)
            self._deliver(lambda: on_ready(photo, path))

        self._thumb_pool.submit(self._guard, run)

    def stats(self, on_stats: Callable[[LibraryStats], None]) -> None:
        """The index's counts and size on disk, computed off the UI thread."""

        def run() -> None:
            stats = self._stats()
            self._deliver(lambda: on_stats(stats))

        self._submit(run)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop indexing (after its batch in flight), finish queued work and release the index."""
        if self._closed:
            return
        self.cancel_indexing()
        self._closed = True
        self._engine_pool.shutdown(wait=True, cancel_futures=True)
        self._thumb_pool.shutdown(wait=True, cancel_futures=True)
        self._close_engine()
