"""A slim progress strip for the search screen: indexing goes on while search already works."""
from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class IndexingStrip(ButtonBehavior, BoxLayout):
    """Shows the app's indexing progress; tapping it opens the indexing screen."""

    def on_release(self) -> None:
        from kivy.app import App

        App.get_running_app().show("indexing")
