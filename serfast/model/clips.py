"""Which clips a model was trained on, so that scoring it on them can say so.

A clip is known by two 64-bit hashes: of its path as the store records it, and of its
store row's values (the same audio extracted into another store, or moved, keeps the
second). A model DIR keeps its training clips' hashes in ``clips.npz``; a clip overlaps
when either hash is among them.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

__all__ = ["CLIPS_FILE", "clip_ids", "load_clip_ids", "trained_on"]

CLIPS_FILE = "clips.npz"


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def clip_ids(paths: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Hashes of clips: ``paths`` (n,) str, ``values`` (n, columns) float32 store rows ->
    {"path": (n,) uint64, "values": (n,) uint64}."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return {"path": np.array([_hash64(str(p).encode("utf-8")) for p in paths], np.uint64),
            "values": np.array([_hash64(row.tobytes()) for row in values], np.uint64)}


def load_clip_ids(model_dir: str) -> dict[str, np.ndarray] | None:
    """The training clips' hashes of ``model_dir``; None if it does not record them."""
    path = os.path.join(model_dir, CLIPS_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in ("path", "values")}


def trained_on(model_ids: dict[str, np.ndarray], ids: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) bool: which of the clips ``ids`` are among the training clips ``model_ids``."""
    return (np.isin(ids["path"], model_ids["path"])
            | np.isin(ids["values"], model_ids["values"]))
