"""The search screen's empty states: each names the situation and what to do."""
from __future__ import annotations

from app.empty_states import choose_empty_state

READY = {"model_ready": True, "model_error": "", "galleries": ["/photos"], "indexed": 10, "indexing": False,
         "photos_found": 10, "mode": "text", "n_results": 10, "query": "a cat", "search_error": ""}


def kind(**changes):
    state = choose_empty_state(**{**READY, **changes})
    return None if state is None else state.kind


def test_results_mean_no_empty_state():
    assert kind() is None


def test_each_situation_has_its_empty_state():
    assert kind(model_error="no model at x") == "model-error"
    assert kind(galleries=[], model_ready=False) == "no-gallery"
    assert kind(model_ready=False) == "loading"
    assert kind(indexed=0, indexing=True) == "not-indexed"
    assert kind(indexed=0, photos_found=None) == "not-indexed"
    assert kind(indexed=0, photos_found=0) == "no-photos"
    assert kind(search_error="the query is empty") == "query-error"
    assert kind(mode="none", n_results=0) == "no-query"
    assert kind(n_results=0) == "no-results"


def test_empty_states_tell_what_to_do():
    no_gallery = choose_empty_state(**{**READY, "galleries": []})
    assert no_gallery.title == "No gallery chosen" and "Settings" in no_gallery.hint
    no_photos = choose_empty_state(**{**READY, "indexed": 0, "photos_found": 0})
    assert "/photos" in no_photos.hint
    error = choose_empty_state(**{**READY, "model_error": "no model at runs/offline"})
    assert "make run" in error.hint
    none = choose_empty_state(**{**READY, "n_results": 0})
    assert '"a cat"' in none.title
