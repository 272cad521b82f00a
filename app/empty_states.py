"""Which empty state the search screen shows, and its words (no Kivy): each tells the person what to do next."""
from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmptyState:
    kind: str  # a stable name tests and logs can use: "no-gallery", "not-indexed", "no-results", ...
    title: str
    hint: str


def choose_empty_state(*, model_ready: bool, model_error: str, galleries: list[str], indexed: int,
                       indexing: bool, photos_found: int | None, mode: str, n_results: int, query: str,
                       search_error: str) -> EmptyState | None:
    """The empty state to show in place of results, or None when there are results to show.

    ``photos_found``: photos the last scan found in the galleries (None before the first scan);
    ``mode``: "none" before any search, "text" or "similar" after one.
    """
    if model_error:
        return EmptyState("model-error", "The model could not be loaded",
                          f"{model_error}. Run `make run` first (and `python -m export.executorch` for a bundle).")
    if not galleries:
        return EmptyState("no-gallery", "No gallery chosen",
                          "Open Settings and add the folder that holds your photos.")
    if not model_ready:
        return EmptyState("loading", "Loading the model...", "Search is ready in a few seconds.")
    if indexed == 0:
        if indexing or photos_found is None:
            return EmptyState("not-indexed", "Nothing indexed yet",
                              "Your photos are being indexed: search works as soon as the first ones are done.")
        if photos_found == 0:
            return EmptyState("no-photos", "No photos in your gallery folders",
                              "Add JPEG or PNG photos to " + ", ".join(galleries)
                              + ", or choose another folder in Settings.")
        return EmptyState("not-indexed", "Nothing indexed yet", "Open Indexing and tap Scan now.")
    if search_error:
        return EmptyState("query-error", "Cannot search for that", search_error)
    if mode == "none":
        return EmptyState("no-query", "Describe a photo",
                          'Type what you are looking for, e.g. "a red circle on a blue background", '
                          "and press Enter.")
    if n_results == 0:
        what = f'"{query}"' if mode == "text" else "this photo"
        return EmptyState("no-results", f"No results for {what}",
                          "Try other words, or wait until indexing has finished.")
    return None
