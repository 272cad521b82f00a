"""The on-device search engine: gallery scanner, embedding store, indexer, search and encoder runtimes.

No Kivy and no training code: every class takes its data directory and gallery roots as arguments.
The public entry points are :class:`SearchEngine` (the facade) and :func:`load_encoders`; the values
and errors they hand back (scan and index reports, :class:`StoreError`, :class:`ModelLoadError`) are
exported here too, so callers such as the app's controller need not know which module defines them.
"""
from __future__ import annotations

from app.engine.engine import ScanResult, SearchEngine
from app.engine.indexer import IndexJob, IndexReport
from app.engine.runtimes import ModelLoadError, load_encoders
from app.engine.search import SearchResult
from app.engine.store import StoreError
from app.engine.tokenizer import QueryError

__all__ = ["IndexJob", "IndexReport", "ModelLoadError", "QueryError", "ScanResult", "SearchEngine", "SearchResult",
           "StoreError", "load_encoders"]
