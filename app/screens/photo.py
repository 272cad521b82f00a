"""One photo full screen, with "Similar photos" to search the gallery for photos like it."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import NumericProperty, OptionProperty, StringProperty
from kivy.uix.screenmanager import Screen

from app.thumbnails import VIEW_SIZE

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class PhotoScreen(Screen):
    photo = StringProperty("")
    score = NumericProperty(0.0)
    image_source = StringProperty("")
    image_state = OptionProperty("loading", options=["loading", "ready", "failed"])

    @property
    def title(self) -> str:
        return os.path.basename(self.photo)

    def display(self, photo: str, score: float) -> None:
        """Show ``photo``: a screen-sized copy is made in the background (the original is only read)."""
        self.photo, self.score = photo, score
        self.image_source, self.image_state = "", "loading"
        App.get_running_app().request_thumbnail(photo, self._image_ready, VIEW_SIZE)

    def _image_ready(self, photo: str, path: Path | None) -> None:
        if photo != self.photo:
            return
        if path is None:
            self.image_state = "failed"
        else:
            self.image_source, self.image_state = str(path), "ready"

    def find_similar(self) -> None:
        App.get_running_app().similar(self.photo)
