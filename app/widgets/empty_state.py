"""What the results area shows when there is nothing to show: a title and what to do about it."""
from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout

logger = logging.getLogger(__name__)

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


class EmptyStateView(BoxLayout):
    kind = StringProperty("")
    title = StringProperty("")
    hint = StringProperty("")
