"""The settings screen: gallery folders (add, remove), re-index, what the model is, how big the index is."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class GalleryRow(BoxLayout):
    """One gallery folder and its Remove button."""

    folder = StringProperty("")

    def remove(self) -> None:
        app = App.get_running_app()
        app.set_galleries([g for g in app.galleries if g != self.folder])


class SettingsScreen(Screen):
    folder_error = StringProperty("")

    def on_kv_post(self, base_widget) -> None:
        app = App.get_running_app()
        app.bind(galleries=self._fill_galleries)
        self._fill_galleries()

    def on_pre_enter(self, *_args) -> None:
        App.get_running_app().update_stats()

    def _fill_galleries(self, *_args) -> None:
        box = self.ids.galleries
        box.clear_widgets()
        for folder in App.get_running_app().galleries:
            box.add_widget(GalleryRow(folder=folder))

    def add_folder(self) -> None:
        """Add the folder typed in the box to the galleries (it must exist) and scan it."""
        text = self.ids.new_folder.text.strip()
        if not text:
            return
        folder = os.path.abspath(os.path.expanduser(text))
        if not os.path.isdir(folder):
            self.folder_error = f"{folder} is not a folder"
            return
        self.folder_error = ""
        self.ids.new_folder.text = ""
        app = App.get_running_app()
        app.set_galleries([*app.galleries, folder])

    def reindex(self) -> None:
        """Scan every folder again and retry photos skipped before as unreadable."""
        App.get_running_app().refresh(retry_skipped=True)
