"""Host to GPU and back: clips staged into pinned memory and uploaded by a background
thread while the GPU computes, and results copied back.

The array module ``xp`` is CuPy on a GPU; with NumPy (the tests' stand-in) staging
happens in the caller's thread and nothing is copied.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

__all__ = ["STAGING_THREADS", "stage", "to_host", "uploaded"]

#: Threads that copy a chunk's clips into pinned host memory when one process has the GPU.
STAGING_THREADS = min(8, os.cpu_count() or 1)


def uploaded(chunks: list[np.ndarray], signals: list[np.ndarray], lengths: np.ndarray,
             xp, threads: int = 1, ahead: int = 2):
    """Yield ``(clips, y)`` per chunk: y (len(clips), max length) float32 on the device,
    clip ``i`` zero past ``lengths[clips[i]]``.  A background thread stages (with
    ``threads`` copy threads) and uploads up to ``ahead`` chunks before the consumer
    needs them."""
    if xp is np:
        for clips in chunks:
            yield clips, stage(clips, signals, lengths, np.empty, threads)
        return
    ready: queue.Queue = queue.Queue(ahead)
    stop = threading.Event()

    def offer(item) -> bool:
        """Queue ``item`` unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            import cupyx

            stream = xp.cuda.Stream(non_blocking=True)
            with stream:
                for clips in chunks:
                    host = stage(clips, signals, lengths, cupyx.empty_pinned, threads)
                    y = xp.empty(host.shape, xp.float32)
                    y.set(host)
                    stream.synchronize()  # y is complete and host may be freed
                    if not offer((clips, y)):
                        return
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            offer(err)
            return
        offer(None)

    thread = threading.Thread(target=produce, name="serfast-upload", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
            del item  # the consumer is done with this chunk: free it before waiting
    finally:
        stop.set()
        thread.join()


def stage(clips: np.ndarray, signals: list[np.ndarray], lengths: np.ndarray,
          empty, threads: int = 1) -> np.ndarray:
    """The chunk's clips as one (len(clips), max length) float32 host array from
    ``empty(shape, dtype)``, zero past each clip's end; large chunks are copied by up to
    ``threads`` threads (NumPy copies release the GIL)."""
    n = lengths[clips]
    host = empty((len(clips), int(n.max())), np.float32)

    def fill(rows: range) -> None:
        for row in rows:
            host[row, :n[row]] = signals[clips[row]]
            host[row, n[row]:] = 0.0

    parts = min(threads, max(1, len(clips) // 64))
    if parts == 1:
        fill(range(len(clips)))
    else:
        bounds = np.linspace(0, len(clips), parts + 1).astype(int)
        with ThreadPoolExecutor(parts) as pool:
            list(pool.map(fill, [range(a, b) for a, b in pairwise(bounds)]))
    return host


def to_host(a, xp) -> np.ndarray:
    """``a`` as a host NumPy array (copied back from the GPU under CuPy)."""
    return a if xp is np else xp.asnumpy(a)
