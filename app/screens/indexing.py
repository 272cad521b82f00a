"""The indexing screen: progress (photos done / total, rate), what the last scan found, cancel and scan now."""
from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.uix.screenmanager import Screen

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class IndexingScreen(Screen):
    def cancel(self) -> None:
        App.get_running_app().cancel_indexing()

    def scan_now(self) -> None:
        App.get_running_app().refresh()
