"""Tables built once with librosa and SciPy, cached on disk per user.

Building serfast's filter banks and pYIN's tables imports librosa and ``scipy.stats``
(one to two seconds in every fresh process, each worker included), so the tables are
saved under ``$SERFAST_CACHE`` (default ``~/.cache/serfast``), keyed by what they are
built from and the versions of the libraries that build them, like Numba caches compiled
kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ..io.files import atomic_write

__all__ = ["cached_tables"]


def cached_tables(name: str, key, build: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns for ``key`` (anything JSON can write), from the disk
    cache, else built and saved there (atomically; a cache that cannot be written only
    costs the rebuild). ``name`` starts the cache file's name."""
    text = json.dumps([key, version("librosa"), version("scipy")], sort_keys=True)
    folder = os.environ.get("SERFAST_CACHE", os.path.expanduser("~/.cache/serfast"))
    path = os.path.join(folder, f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz")
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, TypeError, KeyError):
        pass
    tables = build()
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **tables)
    except OSError:
        pass  # a read-only home only costs the rebuild
    return tables
