"""A result tile: the photo's thumbnail (made lazily, in the background) and its score; tap opens the photo."""
from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import NumericProperty, OptionProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from app.thumbnails import GRID_SIZE

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class ThumbnailTile(RecycleDataViewBehavior, ButtonBehavior, BoxLayout):
    """One search result. The RecycleView reuses tiles as the grid scrolls: only visible photos get thumbnails."""

    photo = StringProperty("")
    score = NumericProperty(0.0)
    rank = NumericProperty(0)
    thumb_source = StringProperty("")
    thumb_state = OptionProperty("loading", options=["loading", "ready", "failed"])

    def refresh_view_attrs(self, rv, index, data):
        super().refresh_view_attrs(rv, index, data)
        self._load_thumbnail()

    def _load_thumbnail(self) -> None:
        self.thumb_state, self.thumb_source = "loading", ""
        app = App.get_running_app()
        if self.photo and app is not None:
            app.request_thumbnail(self.photo, self._thumbnail_ready, GRID_SIZE)

    def _thumbnail_ready(self, photo: str, path: Path | None) -> None:
        if photo != self.photo:
            return  # the tile shows another photo by now
        if path is None:
            self.thumb_state = "failed"
        else:
            self.thumb_source, self.thumb_state = str(path), "ready"

    def on_release(self) -> None:
        App.get_running_app().open_photo(self.photo, self.score)
