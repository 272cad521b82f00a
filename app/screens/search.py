"""The search screen: a query box, the results as a grid of thumbnails with scores, and the empty states."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ObjectProperty, OptionProperty, StringProperty
from kivy.uix.screenmanager import Screen

from app.empty_states import EmptyState, choose_empty_state
from app.engine import SearchResult
from app.widgets import empty_state, indexing_strip, thumbnail

logger = logging.getLogger(__name__)

# the widgets this screen's .kv uses; importing their modules loaded their rules
USES = (empty_state.EmptyStateView, indexing_strip.IndexingStrip, thumbnail.ThumbnailTile)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))

WATCHED = ("model_ready", "model_error", "galleries", "stats", "indexing", "photos_found")


class SearchScreen(Screen):
    mode = OptionProperty("none", options=["none", "text", "similar"])
    query = StringProperty("")  # the text searched for, or the photo whose similar photos are shown
    header = StringProperty("")
    searching = BooleanProperty(False)
    search_error = StringProperty("")
    empty_state = ObjectProperty(None, allownone=True)

    def on_kv_post(self, base_widget) -> None:
        app = App.get_running_app()
        app.bind(**{name: self.update_empty_state for name in WATCHED})
        self.update_empty_state()

    # ------------------------------------------------------------------ input

    def submit(self) -> None:
        """Search for what the query box says (Enter or the Search button)."""
        text = self.ids.query.text.strip()
        if not text:
            self.search_error = ""
            self.ids.query.focus = True
            return
        App.get_running_app().search(text)

    # ------------------------------------------------------------------ output (UI thread)

    def show_pending(self, mode: str, query: str) -> None:
        self.searching, self.search_error = True, ""
        self.mode, self.query = mode, query
        if mode == "similar":
            self.ids.query.text = ""

    def show_results(self, mode: str, query: str, results: list[SearchResult]) -> None:
        self.searching, self.search_error = False, ""
        self.mode, self.query = mode, query
        self.ids.grid.data = [{"photo": r.path, "score": r.score, "rank": i + 1} for i, r in enumerate(results)]
        self.ids.grid.scroll_y = 1
        if mode == "text":
            self.header = f'{len(results)} photos for "{query}"'
        else:
            self.header = f"{len(results)} photos similar to {os.path.basename(query)}"
        self.update_empty_state()

    def show_error(self, message: str) -> None:
        self.searching, self.search_error = False, message
        self.ids.grid.data = []
        self.header = ""
        self.update_empty_state()

    @property
    def result_paths(self) -> list[str]:
        """The photos shown, best first."""
        return [d["photo"] for d in self.ids.grid.data]

    def update_empty_state(self, *_args) -> None:
        app = App.get_running_app()
        state: EmptyState | None = choose_empty_state(
            model_ready=app.model_ready, model_error=app.model_error, galleries=list(app.galleries),
            indexed=app.stats.indexed, indexing=app.indexing, photos_found=app.photos_found, mode=self.mode,
            n_results=len(self.ids.grid.data), query=self.query, search_error=self.search_error)
        if state is not None and self.mode != "none" and self.ids.grid.data and not self.search_error:
            state = None  # results of an earlier search stay visible while the index changes
        self.empty_state = state
