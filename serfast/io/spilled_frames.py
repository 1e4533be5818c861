"""Frame-level features of long files, spilled to disk instead of sent through memory.

A worker that streams a long file (:mod:`serfast.features.long_clips`) writes its frames,
chunk by chunk, with a :class:`FrameSink` to ``<row>.f4`` (raw little-endian float32
rows) in the store's :func:`spill_dir`, and hands back a :class:`FramesFile`; the store
writer copies that file into its frames in blocks (:meth:`FramesFile.copy_into`) and
removes it. :func:`remove_spills` clears what a stopped run left there. Memory stays at
one block whatever the file's length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["COPY_BLOCK", "FrameSink", "FramesFile", "copy_bytes", "remove_spills", "spill_dir"]

#: Bytes copied at a time between frame files.
COPY_BLOCK = 1 << 24


def spill_dir(base: str) -> str:
    """The folder of spilled frames beside the store whose path without ``.npy`` is
    ``base``."""
    return base + ".frames.long"


@dataclass
class FramesFile:
    """A row's frames spilled by a worker: ``n_frames`` float32 rows at ``path``, already
    checked finite."""

    path: str
    n_frames: int

    def copy_into(self, dst, row_bytes: int) -> None:
        """Append the frames to the open file ``dst``, then remove the file (OSError if
        it holds fewer bytes than ``n_frames * row_bytes``)."""
        with open(self.path, "rb") as src:
            copy_bytes(src, dst, self.n_frames * row_bytes)
        self.remove()

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


class FrameSink:
    """Receives a streamed clip's frame chunks ((n, columns) float32 arrays): written to
    ``path`` when it is given, kept in memory when it is "" (as on a Dask worker, whose
    disk the store writer cannot read)."""

    def __init__(self, path: str = ""):
        self.path, self.n, self.finite, self.chunks = path, 0, True, []
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fh = open(path, "wb") if path else None

    def __call__(self, chunk: np.ndarray) -> None:
        self.finite = self.finite and bool(np.isfinite(chunk).all())
        self.n += len(chunk)
        if self.fh is not None:
            self.fh.write(np.ascontiguousarray(chunk, "<f4").tobytes())
        else:
            self.chunks.append(chunk)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()

    def discard(self) -> None:
        """Drop what was received (the file too)."""
        self.chunks = []
        if self.path:
            FramesFile(self.path, 0).remove()

    def result(self) -> "np.ndarray | FramesFile | None":
        """The frames: a :class:`FramesFile` of ``path``, or the chunks joined."""
        if self.path:
            return FramesFile(self.path, self.n)
        return np.concatenate(self.chunks) if self.chunks else None


def remove_spills(folder: str) -> None:
    """Remove the ``<row>.f4`` files in ``folder`` and the folder once it is empty
    (nothing else: a folder holding other files stays)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.removesuffix(".f4").isdigit():
            os.remove(os.path.join(folder, name))
    if not os.listdir(folder):
        os.rmdir(folder)


def copy_bytes(src, dst, size: int) -> None:
    """Copy ``size`` bytes from the open file ``src`` (at its position) to the open file
    ``dst`` in blocks of :data:`COPY_BLOCK`; OSError if ``src`` holds fewer."""
    while size > 0:
        block = src.read(min(size, COPY_BLOCK))
        if not block:
            raise OSError(f"{getattr(src, 'name', 'frames')}: {size} bytes of frames missing")
        dst.write(block)
        size -= len(block)
