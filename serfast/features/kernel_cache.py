"""Where serfast's compiled Numba kernels are cached: a per-user folder, never the package.

Numba's default ``cache=True`` writes beside the source, into the installed package's
``__pycache__``; a later reinstall leaves that folder behind, where it shadows the new
install (``cannot import name '__version__' from 'serfast' (unknown location)``). The
kernels of :mod:`serfast.features` are decorated with this module's :func:`njit`, which
caches them in :func:`cache_dir`.

Numba picks a function's cache folder when it is decorated, from ``numba.config.CACHE_DIR``
(the ``NUMBA_CACHE_DIR`` environment variable). :func:`njit` sets it only for the moment of
decorating a serfast kernel and restores it, so other libraries' Numba caches and the
environment are untouched; a user's ``NUMBA_CACHE_DIR`` is used as it is.
"""

from __future__ import annotations

import os

import numba

__all__ = ["cache_dir", "njit"]


def cache_dir() -> str:
    """The folder of serfast's kernel cache: ``NUMBA_CACHE_DIR`` if the user set it, else
    ``$XDG_CACHE_HOME/serfast/numba`` (``~/.cache/serfast/numba`` without XDG_CACHE_HOME)."""
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "serfast", "numba")


def njit(*args, cache: bool = False, **options):
    """``numba.njit``; with ``cache=True`` the compiled kernel is cached in :func:`cache_dir`.

    Used as ``@njit(cache=True, fastmath=...)``, like Numba's."""
    if args:  # bare @njit
        return numba.njit(*args, cache=cache, **options)

    def decorate(func):
        if not cache:
            return numba.njit(**options)(func)
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = cache_dir()
        try:
            return numba.njit(cache=True, **options)(func)
        finally:
            numba.config.CACHE_DIR = saved

    return decorate
