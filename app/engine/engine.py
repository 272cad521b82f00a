"""SearchEngine: the facade the app and the CLI use - scan galleries, index them, search them."""
from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from app.engine.decode import DecodeLimits, PhotoDecodeError, load_photo
from app.engine.indexer import Indexer, IndexJob, IndexReport, Progress
from app.engine.pathnames import shown
from app.engine.photo_sources import is_uri, source_for
from app.engine.runtimes.base import Encoders
from app.engine.scanner import ScanPlan, ScanReport, plan_changes, walk_gallery
from app.engine.search import SearchResult, top_k_rows
from app.engine.store import MAX_EMBED_DIM, EmbeddingStore, StoreError, StoreStats
from app.engine.tokenizer import QueryError

logger = logging.getLogger(__name__)

RERANK_BATCH = 64  # photos the teacher re-scores at a time: memory stays bounded whatever M is


class Reranker(Protocol):
    """A second-stage scorer of the student's best candidates (the desktop's ``app.desktop.rerank``)."""

    def rerank(self, query: str, candidates: Sequence[SearchResult]) -> list[SearchResult]: ...


@dataclass
class ScanResult:
    """A walk of the galleries and what it changed in the store."""

    plan: ScanPlan
    report: ScanReport
    seconds: float = 0.0

    def summary(self) -> str:
        text = f"scan: {self.report.files} photos in {self.report.folders} folders, {self.plan.summary()} ({self.seconds:.2f}s)"
        if self.report.skipped:
            text += "; skipped " + ", ".join(f"{n} {r}" for r, n in sorted(self.report.skipped.items()))
        return text


@dataclass
class UpdateResult:
    scan: ScanResult
    index: IndexReport
    compacted: bool = False
    notes: list[str] = field(default_factory=list)


class SearchEngine:
    """Everything the app does except drawing: one data directory, one model.

    ``readonly=True`` searches an index another process may be writing (the CLI's search);
    the default opens it for writing (scans, indexing), taking the data directory's writer lock.
    ``embedding_dtype`` ("float32" or "float16") is how a new index stores embeddings; an existing
    index of the other kind is refused (see :class:`EmbeddingStore`).
    """

    def __init__(
        self,
        data_dir: str | Path,
        encoders: Encoders,
        readonly: bool = False,
        reranker: Reranker | None = None,
        limits: DecodeLimits | None = None,
        embedding_dtype: str | None = None,
    ):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.encoders = encoders
        self.reranker = reranker
        self.limits = limits or DecodeLimits()
        if not (isinstance(encoders.embed_dim, int) and 1 <= encoders.embed_dim <= MAX_EMBED_DIM):
            raise StoreError(f"model {encoders.model_id} declares embedding size {encoders.embed_dim!r}; "
                             f"expected a whole number from 1 to {MAX_EMBED_DIM}")  # before the index is touched
        self.store = EmbeddingStore(self.data_dir, readonly=readonly, embedding_dtype=embedding_dtype)
        self._jobs: list[IndexJob] = []
        self.notes: list[str] = [self.store.recovered] if self.store.recovered else []
        try:
            if readonly:
                st = self.store.stats()
                if st.model_id is not None and (st.model_id, st.embed_dim) != (encoders.model_id, encoders.embed_dim):
                    raise StoreError(
                        f"the index in {self.data_dir} was built with model {st.model_id} (dim {st.embed_dim}), "
                        f"not {encoders.model_id} (dim {encoders.embed_dim}); run `index` with this model to rebuild it"
                    )
            elif (self.store.bind_model(encoders.model_id, encoders.embed_dim) and self.store.recovered
                  and self.store.recovered not in self.notes):
                self.notes.append(self.store.recovered)
        except BaseException:
            self.store.close()
            raise

    # ------------------------------------------------------------------ indexing

    def scan(self, roots: Iterable[str | Path]) -> ScanResult:
        """Walk ``roots`` (the complete set of gallery folders) and record new/changed/moved/deleted photos.

        Photos under a root or folder that cannot be listed right now (unmounted card, permission
        revoked), or under a root that holds none of its indexed photos any more (``plan_changes``),
        are kept, not deleted.
        """
        start = time.perf_counter()
        report = ScanReport()
        known = self.store.known_photos()
        roots = list(roots)
        sources = [s for s in (source_for(str(r)) for r in roots) if s is not None]
        folders = [r for r in roots if source_for(str(r)) is None]
        files = itertools.chain(walk_gallery(folders, report, exclude=[self.data_dir]),
                                *(source.list_photos(report) for source in sources))
        plan = plan_changes(files, known, keep_roots=report.unavailable, roots=roots)
        for root in plan.kept_roots:
            report.skip("gallery root holds none of its indexed photos (empty or not mounted?): kept", root)
        self.store.apply_plan(plan)
        result = ScanResult(plan, report, time.perf_counter() - start)
        logger.info(result.summary())
        return result

    def indexer(self, batch_size: int | None = None, decode_workers: int | None = None,
                throttle_s: float = 0.0) -> Indexer:
        return Indexer(self.store, self.encoders, batch_size, decode_workers, self.limits, throttle_s)

    def index(self, progress: Progress | None = None, cancel=None, batch_size: int | None = None,
              decode_workers: int | None = None, throttle_s: float = 0.0) -> IndexReport:
        """Encode every pending photo (blocking); see :class:`Indexer`."""
        return self.indexer(batch_size, decode_workers, throttle_s).run(progress, cancel)

    def update(self, roots: Iterable[str | Path], progress: Progress | None = None, cancel=None,
               batch_size: int | None = None, decode_workers: int | None = None,
               throttle_s: float = 0.0, retry_failed: bool = False,
               on_scanned: Callable[[ScanResult], None] | None = None) -> UpdateResult:
        """Scan, index what changed, compact the matrix if many rows died.

        ``retry_failed`` first queues the photos skipped as unreadable again (after a decoder was
        installed, say); ``on_scanned(scan)`` is told what the scan found before indexing starts.
        """
        if retry_failed:
            self.store.retry_failed()
        scan = self.scan(roots)
        if on_scanned is not None:
            on_scanned(scan)
        report = self.index(progress, cancel, batch_size, decode_workers, throttle_s)
        compacted = False if report.cancelled else self.store.compact()
        return UpdateResult(scan, report, compacted, list(self.notes))

    def start_update(self, roots: Iterable[str | Path], progress: Progress | None = None,
                     batch_size: int | None = None, decode_workers: int | None = None, throttle_s: float = 0.0,
                     retry_failed: bool = False, on_scanned: Callable[[ScanResult], None] | None = None,
                     on_finished: Callable[[IndexReport | None, BaseException | None], None] | None = None,
                     ) -> IndexJob:
        """:meth:`update` in a background thread (the app's refreshes); search works meanwhile.

        ``progress``, ``on_scanned`` and ``on_finished`` (see :class:`IndexJob`) are called on the job's
        thread; :meth:`close` cancels the job and waits for it.
        """
        roots = list(roots)

        def work(cancel) -> IndexReport:
            return self.update(roots, progress, cancel, batch_size, decode_workers, throttle_s,
                               retry_failed, on_scanned).index

        job = IndexJob(work, on_finished)
        self._jobs = [j for j in self._jobs if not j.done] + [job]
        return job

    # ------------------------------------------------------------------ search

    def search_text(self, query: str, k: int = 10, rerank_top_m: int = 0) -> list[SearchResult]:
        """Photos best matching ``query``, best first, at most ``k`` (fewer if the gallery is smaller).

        ``rerank_top_m`` > 0 re-scores the best max(k, M) with the teacher when one is loaded.
        Raises QueryError for an empty query or k < 1.
        """
        _check_k(k)
        tokens = self.encoders.tokenizer.encode_query(query)
        q = self.encoders.encode_tokens(tokens)[0]
        if self.reranker is not None and rerank_top_m > 0:
            candidates = self.search_vector(q, max(k, rerank_top_m))
            rescored = [r for s in range(0, len(candidates), RERANK_BATCH)
                        for r in self.reranker.rerank(query, candidates[s : s + RERANK_BATCH])]
            return sorted(rescored, key=lambda r: (-r.score, r.photo_id))[:k]
        return self.search_vector(q, k)

    def search_image(self, path: str | Path, k: int = 10) -> list[SearchResult]:
        """Photos most similar to the photo at ``path`` (itself excluded when it is in the index)."""
        _check_k(k)
        source = source_for(str(path))
        path = str(path) if source is not None else os.path.abspath(os.path.expanduser(str(path)))
        stored = self.store.embedding_of_path(path)
        if stored is not None:
            photo_id, q = stored
            return self.search_vector(q, k, exclude_id=photo_id)
        try:
            pixels = (source.load(path, self.encoders.preprocess, 0, 0) if source is not None
                      else load_photo(path, self.encoders.preprocess, self.limits)).pixels
        except PhotoDecodeError as e:
            raise QueryError(f"cannot use {shown(path)} as a query: {e.reason}") from e
        except MemoryError as e:
            raise QueryError(f"cannot use {shown(path)} as a query: out of memory while decoding") from e
        return self.search_vector(self.encoders.encode_images(pixels[None])[0], k)

    def search_vector(self, query: np.ndarray, k: int, exclude_id: int | None = None) -> list[SearchResult]:
        """Top ``k`` photos for an embedding (D,). Photos deleted from the store or from disk never appear."""
        _check_k(k)
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if not np.isfinite(q).all():
            raise QueryError("the query embedding is not finite (encoder failure)")
        snap = self.store.snapshot()
        if snap.model_id is not None and (snap.model_id, snap.embed_dim) != (self.encoders.model_id,
                                                                            self.encoders.embed_dim):
            raise StoreError(f"the index in {self.data_dir} was rebuilt with model {snap.model_id} "
                             f"(dim {snap.embed_dim}) since it was opened with {self.encoders.model_id}; "
                             f"open it again with that model")
        want = k + (exclude_id is not None)
        fetch = min(snap.live, want + 8)
        while True:
            rows, scores = top_k_rows(snap, q, fetch)
            ids = snap.photo_ids[rows]
            intact = snap.intact(rows)
            if not intact.all():
                logger.warning("%d damaged embedding rows skipped; `python -m app.engine index` re-encodes "
                               "their photos", int((~intact).sum()))
            paths = self.store.paths_of(ids.tolist())
            results = []
            for pid, score, ok in zip(ids.tolist(), scores.tolist(), intact.tolist()):
                path = paths.get(pid)
                if not ok or not np.isfinite(score) or path is None or pid == exclude_id \
                        or not (is_uri(path) or os.path.exists(path)):
                    continue  # damaged, deleted since the snapshot, the query itself, or gone from disk (a
                    # library item's absence shows at the next scan: asking the OS here would cost a query)
                results.append(SearchResult(path, float(score), pid))
                if len(results) == k:
                    return results
            if fetch >= snap.live:
                return results
            fetch = min(snap.live, fetch * 2)

    # ------------------------------------------------------------------ state

    def stats(self) -> StoreStats:
        return self.store.stats()

    def close(self) -> None:
        """Stop background work (after its batch in flight) and release the store."""
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            try:
                job.wait()
            except Exception as e:  # noqa: BLE001 - closing must not fail because a finished job had failed
                logger.warning("background indexing had failed: %s", e)
        self._jobs = []
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"k must be a whole number >= 1, got {k!r}")
