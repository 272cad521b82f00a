"""The Kivy App: screens (built when first visited), the state they show, and the controller's events.

The App holds no engine logic: it turns taps into :class:`AppController` calls and the
controller's answers (delivered on the UI thread through ``Clock.schedule_once``) into property
changes the screens' .kv rules display.
"""
from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.screenmanager import NoTransition, Screen, ScreenManager

from app.controller import AppController
from app.engine import SearchResult
from app.gallery_settings import GallerySettings
from app.launch import LaunchOptions
from app.library_events import IndexOutcome, IndexProgress, LibraryStats, OpenedLibrary, ScanSummary
from app.platform import PlatformName, default_data_dir, detect_platform, load_bridge

logger = logging.getLogger(__name__)

KV_FILE = Path(__file__).with_suffix(".kv")
RESULTS_K = 24  # photos shown for a query: a screenful of thumbnails

# screen name -> (module, class); a screen's module (and its .kv) is imported on its first visit
SCREENS: dict[str, tuple[str, str]] = {
    "search": ("app.screens.search", "SearchScreen"),
    "indexing": ("app.screens.indexing", "IndexingScreen"),
    "settings": ("app.screens.settings", "SettingsScreen"),
    "photo": ("app.screens.photo", "PhotoScreen"),
}


def configure_kivy(width: int = 1000, height: int = 720) -> None:
    """Window size and input settings; call before the window exists (before ``App.run``)."""
    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("kivy", "exit_on_escape", "0")  # Escape goes back a screen (as Android's back button)
    Config.set("input", "mouse", "mouse,multitouch_on_demand")  # no red touch dots on right-click


def post_to_ui(fn: Callable[[], None]) -> None:
    """Run ``fn()`` on Kivy's main thread at the next frame (safe to call from any thread)."""
    Clock.schedule_once(lambda _dt: fn(), 0)


class PocketClipApp(App):
    """Private photo search: type a description, get the matching photos of your gallery."""

    title = "PocketClip photo search"

    # the model and the index
    model_ready = BooleanProperty(False)
    model_error = StringProperty("")
    model_lines = ListProperty()  # what settings shows about the model
    load_seconds = NumericProperty(0.0)
    # the gallery and indexing
    galleries = ListProperty()
    photos_found = ObjectProperty(None, allownone=True)  # photos the last scan found (None before one)
    indexing = BooleanProperty(False)
    index_done = NumericProperty(0)
    index_total = NumericProperty(0)
    index_rate = NumericProperty(0.0)  # photos per second
    index_status = StringProperty("")
    access_note = StringProperty("")  # e.g. Android 14 "select photos": only the selected photos are indexed
    new_photos_text = StringProperty("")  # "12 new photos found" after a scan that found some
    stats = ObjectProperty(LibraryStats())
    # the time from launch to the first results on screen (the cold start), -1 until then
    first_results_seconds = NumericProperty(-1.0)

    def __init__(self, options: LaunchOptions, **kwargs):
        super().__init__(**kwargs)
        self.options = options
        self.platform_name: PlatformName = detect_platform()
        self.controller: AppController | None = None
        self.data_dir: Path | None = None
        self.settings_store: GallerySettings | None = None
        self.manager: ScreenManager | None = None
        self._history: list[str] = []
        self._waiting_query: str | None = None  # typed before the model was ready

    # ------------------------------------------------------------------ life cycle

    def load_kv(self, filename: str | None = None) -> bool:
        """The app's rules live in main_app.kv (loaded in build), not in Kivy's name-derived default file."""
        return False

    def build(self) -> ScreenManager:
        Builder.load_file(str(KV_FILE))
        self.data_dir = Path(self.options.data_dir or default_data_dir(self.platform_name, self.user_data_dir))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings_store = GallerySettings(self.data_dir)
        self.controller = AppController(post_to_ui, self, batch_size=self.options.batch_size,
                                        throttle_s=self.options.throttle_s)
        self.manager = ScreenManager(transition=NoTransition())
        self.show("search")
        from kivy.core.window import Window

        Window.bind(on_keyboard=self._on_keyboard)
        return self.manager

    def on_start(self) -> None:
        load_bridge(self.platform_name).request_photo_access(lambda granted: post_to_ui(lambda: self._start(granted)))

    def _start(self, photo_access: bool) -> None:
        if not photo_access:
            self.index_status = "Photo access was denied: allow it in the system settings to index your photos."
            galleries: list[str] = []
        elif self.options.galleries is not None:
            galleries = self.settings_store.save(self.options.galleries)
        elif self.settings_store.folders is not None:
            galleries = list(self.settings_store.folders)
        else:
            galleries = load_bridge(self.platform_name).default_gallery_roots()
        note = getattr(load_bridge(self.platform_name), "photo_access_note", None)
        self.access_note = note() if photo_access and note is not None else ""
        self._open_library(self.options.model, galleries)

    def open_library(self, model: str | Path, galleries: list[str], data_dir: str | Path | None = None) -> None:
        """Load ``model`` over the index in ``data_dir`` (default: the current one) and index ``galleries``.

        The launch does this once; calling it again switches model or index and restarts the
        cold-start clock (model load + first search).
        """
        if data_dir is not None:
            self.data_dir = Path(data_dir)
            self.settings_store = GallerySettings(self.data_dir)
        self.options.started = time.perf_counter()
        self._open_library(model, galleries)

    def _open_library(self, model: str | Path, galleries: list[str]) -> None:
        self.options.model = Path(model)
        self.first_results_seconds = -1.0
        self.model_ready, self.model_error = False, ""
        self.photos_found = None
        self.new_photos_text = ""
        self.galleries = list(galleries)
        self.index_status = "Loading the model..."
        self.controller.open(model, self.data_dir, list(galleries))

    def on_pause(self) -> bool:
        return True  # keep running in the background on Android/iOS (indexing goes on)

    def on_resume(self) -> None:
        self.refresh()  # photos taken while the app was away are found by this scan

    def on_stop(self) -> None:
        if self.controller is not None:
            self.controller.close()

    # ------------------------------------------------------------------ navigation

    def _build(self, name: str) -> Screen:
        if name not in SCREENS:
            raise ValueError(f"unknown screen {name!r}; expected one of {sorted(SCREENS)}")
        if not self.manager.has_screen(name):
            module, cls = SCREENS[name]
            self.manager.add_widget(getattr(importlib.import_module(module), cls)(name=name))
        return self.manager.get_screen(name)

    def show(self, name: str) -> Screen:
        """Switch to screen ``name``, building it (and loading its .kv) on its first visit."""
        screen = self._build(name)
        if self.manager.current != name:
            if self.manager.current:
                self._history.append(self.manager.current)
            self.manager.current = name
        return screen

    def back(self) -> bool:
        """Go to the previous screen; False when there is none (the search screen)."""
        if not self._history:
            return False
        self.manager.current = self._history.pop()
        return True

    def screen(self, name: str) -> Screen:
        """Screen ``name``, built if it was not yet, without switching to it."""
        return self._build(name)

    def _on_keyboard(self, _window, key: int, *_args) -> bool:
        if key == 27:  # Escape on the desktop, the back button on Android
            return self.back()
        return False

    # ------------------------------------------------------------------ actions (from the screens)

    def search(self, query: str) -> None:
        """Search for ``query``; typed while the model is loading, it is answered once the model is ready."""
        self.screen("search").show_pending("text", query)
        if not self.model_ready:
            self._waiting_query = query
            return
        self.controller.search(query, RESULTS_K, self._results_for("text", query), self._search_failed)

    def similar(self, photo: str) -> None:
        self.show("search").show_pending("similar", photo)
        self.controller.similar(photo, RESULTS_K, self._results_for("similar", photo), self._search_failed)

    def open_photo(self, photo: str, score: float) -> None:
        self.show("photo").display(photo, score)

    def refresh(self, retry_skipped: bool = False) -> None:
        if self.controller is not None and self.controller.is_open:
            self.index_status = "Scanning the gallery..."
            self.controller.refresh(retry_skipped)

    def cancel_indexing(self) -> None:
        self.controller.cancel_indexing()
        self.index_status = "Cancelling after the batch in progress..."

    def set_galleries(self, galleries: list[str]) -> None:
        saved = self.settings_store.save(galleries)
        self.galleries = saved
        self.photos_found = None
        self.index_status = "Scanning the gallery..."
        self.controller.set_galleries(saved)

    def request_thumbnail(self, photo: str, on_ready: Callable[[str, Path | None], None], max_side: int) -> None:
        if self.controller is not None:
            self.controller.thumbnail(photo, on_ready, max_side)

    def update_stats(self) -> None:
        if self.controller is not None and self.controller.is_open:
            self.controller.stats(self._set_stats)

    # ------------------------------------------------------------------ answers

    def _results_for(self, mode: str, query: str) -> Callable[[list[SearchResult]], None]:
        def show(results: list[SearchResult]) -> None:
            self.screen("search").show_results(mode, query, results)
            if self.first_results_seconds < 0 and results:
                Clock.schedule_once(self._first_results_drawn, 0)  # after the frame that draws them

        return show

    def _first_results_drawn(self, _dt: float) -> None:
        if self.first_results_seconds < 0:
            self.first_results_seconds = time.perf_counter() - self.options.started
            logger.info("cold start: first results on screen %.2fs after launch (model + index opened in %.2fs)",
                        self.first_results_seconds, self.load_seconds)

    def _search_failed(self, message: str) -> None:
        self.screen("search").show_error(message)

    def _set_stats(self, stats: LibraryStats) -> None:
        self.stats = stats

    # ------------------------------------------------------------------ LibraryListener (UI thread)

    def library_opened(self, library: OpenedLibrary) -> None:
        self.model_ready = True
        self.load_seconds = library.load_seconds
        self.model_lines = (library.model.lines() if library.model else [library.model_description])
        self.stats = library.stats
        for note in library.notes:
            logger.warning("index: %s", note)
        self.index_status = "Scanning the gallery..."
        if self._waiting_query is not None:
            query, self._waiting_query = self._waiting_query, None
            self.search(query)

    def library_failed(self, message: str) -> None:
        self.model_error = message
        self.index_status = message
        if self._waiting_query is not None:
            self._waiting_query = None
            self._search_failed(message)

    def scan_finished(self, scan: ScanSummary) -> None:
        self.photos_found = scan.files
        new = scan.new + scan.changed + scan.moved
        parts = []
        if new:
            parts.append(f"{new} new photo{'s' if new != 1 else ''} found")
        if scan.deleted:
            parts.append(f"{scan.deleted} removed")
        if scan.unavailable:
            parts.append("could not read " + ", ".join(scan.unavailable) + " (its photos are kept)")
        self.new_photos_text = "; ".join(parts) if parts else ("No new photos" if not scan.first else "")
        self.indexing = True  # until the indexer's first progress report says how much there is to do
        self.index_status = "Indexing..."

    def index_progress(self, progress: IndexProgress) -> None:
        self.indexing = progress.done < progress.total
        self.index_total = progress.total
        self.index_done = progress.done
        self.index_rate = progress.photos_per_second
        if progress.total:
            self.index_status = "Indexing... search already works on the photos indexed so far"

    def index_finished(self, outcome: IndexOutcome) -> None:
        self.indexing = False
        self.stats = outcome.stats
        report = outcome.report
        if outcome.error:
            self.index_status = f"Indexing stopped: {outcome.error}"
        elif report is None:
            self.index_status = "Up to date"
        elif report.cancelled:
            self.index_status = (f"Cancelled: {outcome.stats.indexed} indexed, {outcome.stats.pending} waiting; "
                                 "tap Scan now to resume")
        else:
            skipped = sum(report.skipped.values())
            self.index_status = (f"Up to date: {outcome.stats.indexed} photos indexed"
                                 + (f", {skipped} unreadable skipped" if skipped else ""))
            if report.total:
                self.index_done = self.index_total = report.total
                self.index_rate = report.photos_per_second
