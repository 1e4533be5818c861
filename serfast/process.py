"""Process-wide settings serfast changes only in processes it owns.

serfast owns the process of the ``serfast`` command and the worker processes its pools
spawn. There :func:`own_this_process` makes malloc keep freed memory for the next clip
(:mod:`serfast.malloc`; process-wide and irreversible), lets the process exit without a
last walk of the garbage collector over everything it holds (``gc.freeze`` at exit: with
Numba's and SciPy's objects loaded, that walk made every exit take 0.2-0.3 s), and
TensorFlow start quietly (:func:`serfast.model.networks.tensorflow`). A program that
imports serfast as a library, and a Dask worker it shares with other jobs, keep their own
settings: serfast's library calls set what they need only for their own duration (thread
limits, TensorFlow's op determinism, the random generators Keras seeds) and restore it.
"""

from __future__ import annotations

import atexit
import gc

from .malloc import reuse_freed_memory

__all__ = ["own_this_process", "owned"]

_OWNED = {"process": False}


def own_this_process() -> None:
    """Declare this process serfast's own (its CLI, its pool workers) and apply the
    process-wide settings above. Idempotent."""
    if not _OWNED["process"]:
        _OWNED["process"] = True
        reuse_freed_memory()
        atexit.register(gc.freeze)  # teardown still frees by refcount; only the last walk goes


def owned() -> bool:
    """Whether :func:`own_this_process` ran in this process."""
    return _OWNED["process"]
