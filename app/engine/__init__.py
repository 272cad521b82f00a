"""The on-device search engine: gallery scanner, embedding store, indexer, search and encoder runtimes.

No Kivy and no training code: every class takes its data directory and gallery roots as arguments.
The public entry points are :class:`SearchEngine` (the facade) and :func:`load_encoders`.
"""
from __future__ import annotations

from app.engine.engine import SearchEngine
from app.engine.runtimes import load_encoders
from app.engine.search import SearchResult
from app.engine.tokenizer import QueryError

__all__ = ["QueryError", "SearchEngine", "SearchResult", "load_encoders"]
