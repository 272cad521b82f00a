"""Incremental indexer: encodes the store's pending photos in batches, streaming, resumable, cancellable.

Photos are decoded on every core (one thread each; Pillow releases the GIL) while the previous batch
is encoded. Memory is bounded by two batches (the one being encoded and the one being decoded ahead
of it) plus one draft-size decode per worker thread, whatever the gallery's size: pending photos are read
from the store a batch at a time, never listed whole. Every batch is committed on its own
(embeddings fsync'ed before the SQLite commit), so a crash or a cancel loses at most the batch in
flight and the next run starts where this one stopped. A photo that cannot be decoded is recorded
as skipped with its reason (and retried only when the file changes); one that vanished while being
indexed is removed. Nothing is ever written to the gallery.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app.engine.decode import MISSING, DecodeLimits, LoadedPhoto, PhotoDecodeError, load_photo
from app.engine.photo_sources import source_for
from app.engine.runtimes.base import Encoders
from app.engine.store import EmbeddingStore, FailedPhoto, IndexedPhoto, UnchangedPhoto

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # progress(done, total)


@dataclass
class IndexReport:
    """What one indexing run did."""

    total: int = 0  # photos pending when the run started (grows if a scan adds more meanwhile)
    done: int = 0  # photos handled: indexed + skipped + gone
    indexed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)
    gone: int = 0  # vanished while being indexed
    unchanged: int = 0  # queued but with the bytes already encoded (e.g. touched): kept, not encoded again
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def photos_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(path)

    def summary(self) -> str:
        parts = [f"{self.indexed} indexed"] + ([f"{self.unchanged} unchanged"] if self.unchanged else [])
        parts += [f"{n} skipped ({reason})" for reason, n in sorted(self.skipped.items())]
        if self.gone:
            parts.append(f"{self.gone} vanished")
        text = ", ".join(parts) + f" in {self.seconds:.1f}s ({self.photos_per_second:.1f} photos/s)"
        return text + (" - cancelled, run again to resume" if self.cancelled else "")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), the default number of decode threads: decoding
    is most of indexing (bench/results/indexing.json) and Pillow releases the GIL while it decodes."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Indexer:
    """Encodes pending photos of ``store`` with ``encoders``; :meth:`run` blocks, :meth:`start` runs it in a thread."""

    def __init__(
        self,
        store: EmbeddingStore,
        encoders: Encoders,
        batch_size: int | None = None,
        decode_workers: int | None = None,
        limits: DecodeLimits | None = None,
        throttle_s: float = 0.0,
    ):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.store = store
        self.encoders = encoders
        self.batch_size = batch_size or encoders.image_batch_size
        self.decode_workers = max(1, decode_workers or usable_cores())  # JPEG decode releases the GIL
        self.limits = limits or DecodeLimits()
        self.throttle_s = throttle_s  # pause after each batch (thermal/battery budget; a test hook too)

    def _chunks(self) -> Iterator[list[tuple[int, str, int, int]]]:
        last = 0
        while True:
            chunk = self.store.pending_after(last, self.batch_size)
            if not chunk:
                return
            last = chunk[-1][0]
            yield chunk

    def _load(self, row: tuple[int, str, int, int], encoded: bytes | None) -> LoadedPhoto | PhotoDecodeError:
        _, path, size, mtime_ns = row
        try:
            source = source_for(path)
            if source is not None:  # the OS photo library: an image at the model's size from the OS
                loaded = source.load(path, self.encoders.preprocess, size, mtime_ns)
                if encoded is not None and loaded.fingerprint == encoded:
                    return LoadedPhoto(None, loaded.size, loaded.mtime_ns, loaded.fingerprint, loaded.ctime_ns)
                return loaded
            return load_photo(path, self.encoders.preprocess, self.limits, unless_fingerprint=encoded)
        except PhotoDecodeError as e:
            return e
        except MemoryError:
            return PhotoDecodeError(path, "out of memory while decoding")

    def run(self, progress: Progress | None = None, cancel: threading.Event | None = None,
            max_passes: int = 3) -> IndexReport:
        """Index every pending photo; returns early (report.cancelled) once ``cancel`` is set.

        A pass walks the pending photos in id order; photos queued meanwhile behind the cursor (a
        scan running alongside) are picked up by another pass, up to ``max_passes``.
        """
        start = time.perf_counter()
        report = IndexReport(total=self.store.count_pending())
        if progress:
            progress(0, report.total)
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            for _ in range(max_passes):
                self._one_pass(pool, report, progress, cancel)
                if report.cancelled:
                    break
                left = self.store.count_pending()
                if not left:
                    break
                report.total = report.done + left
        report.seconds = time.perf_counter() - start
        logger.info("indexing: %s", report.summary())
        return report

    def _one_pass(self, pool: ThreadPoolExecutor, report: IndexReport, progress: Progress | None,
                  cancel: threading.Event | None) -> None:
        chunks = self._chunks()

        def submit() -> tuple[list, list[Future]] | None:
            chunk = next(chunks, None)
            if chunk is None:
                return None
            encoded = self.store.encoded_fingerprints([row[0] for row in chunk])
            return chunk, [pool.submit(self._load, row, encoded.get(row[0])) for row in chunk]

        inflight = submit()
        while inflight is not None:
            if cancel is not None and cancel.is_set():
                for f in inflight[1]:
                    f.cancel()
                report.cancelled = True
                return
            chunk, futures = inflight
            inflight = submit()  # decode the next batch while this one is encoded
            self._encode_and_commit(chunk, [f.result() for f in futures], report)
            report.total = max(report.total, report.done)
            if progress:
                progress(report.done, report.total)
            if self.throttle_s > 0:
                (cancel or threading.Event()).wait(self.throttle_s)

    def _encode_and_commit(self, chunk: list, loaded: list, report: IndexReport) -> None:
        ok: list[tuple[int, LoadedPhoto]] = []
        failed: list[FailedPhoto] = []
        gone: list[int] = []
        unchanged: list[UnchangedPhoto] = []
        for (photo_id, path, _, _), result in zip(chunk, loaded):
            if isinstance(result, LoadedPhoto) and result.pixels is None:  # same bytes as encoded: keep the row
                unchanged.append(UnchangedPhoto(photo_id, result.size, result.mtime_ns, result.ctime_ns))
            elif isinstance(result, LoadedPhoto):
                ok.append((photo_id, result))
            elif result.reason == MISSING:
                gone.append(photo_id)
            else:
                logger.debug("skipping %s", result)
                report.skip(result.reason, path)
                failed.append(FailedPhoto(photo_id, result.reason))
        indexed: list[IndexedPhoto] = []
        if ok:
            embeddings = self.encoders.encode_images(np.stack([p.pixels for _, p in ok]))
            indexed = [IndexedPhoto(pid, emb, p.size, p.mtime_ns, p.fingerprint, p.ctime_ns)
                       for (pid, p), emb in zip(ok, embeddings)]
        self.store.commit_batch(indexed, failed, gone, unchanged)
        report.indexed += len(indexed)
        report.unchanged += len(unchanged)
        report.gone += len(gone)
        report.done += len(chunk)

    def start(self, progress: Progress | None = None) -> IndexJob:
        """Run in a background thread; the returned job can be cancelled and waited for."""
        return IndexJob(lambda cancel: self.run(progress, cancel))


class IndexJob:
    """A background run: ``cancel()`` stops it after the batch in flight, ``wait()`` returns its report
    (or raises what the run raised).

    ``on_finished(report, error)`` is called on the job's own thread when the run ends, however it ends:
    exactly one of the two is None. It is how an app learns the end without a thread of its own
    waiting; :attr:`done` is still False while it runs, so it must not call :meth:`wait`.
    """

    def __init__(self, work: Callable[[threading.Event], IndexReport],
                 on_finished: Callable[[IndexReport | None, BaseException | None], None] | None = None):
        self._cancel = threading.Event()
        self._report: IndexReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(work, on_finished), name="indexer", daemon=True)
        self._thread.start()

    def _main(self, work: Callable[[threading.Event], IndexReport],
              on_finished: Callable[[IndexReport | None, BaseException | None], None] | None) -> None:
        try:
            self._report = work(self._cancel)
        except BaseException as e:  # handed to the caller of wait() and to on_finished
            logger.exception("indexing failed")
            self._error = e
        if on_finished is not None:
            try:
                on_finished(self._report, self._error)
            except Exception:  # the run's own outcome stays what wait() returns; the callback's bug is logged whole
                logger.exception("the indexing job's on_finished callback failed")

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (the run may still be finishing its batch in flight)."""
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> IndexReport | None:
        """The report once finished, None if still running after ``timeout``."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._report
