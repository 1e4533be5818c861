"""The energy VAD's speech band-pass (:mod:`serfast.calls.vad`): SciPy's Butterworth design,
cached on disk, applied by a Numba ``sosfilt`` equal to SciPy's, so that a worker labels
without importing ``scipy.signal`` (most of a second)."""

from __future__ import annotations

import numpy as np

from ..features.kernel_cache import njit
from ..features.table_cache import cached_tables

__all__ = ["band_filter", "sosfilt"]


def band_filter(sr: int, low: float, high: float) -> np.ndarray:
    """Second-order sections (n, 6) of the 2nd-order Butterworth band-pass ``low``-``high``
    Hz at ``sr``, as ``scipy.signal.butter(..., output="sos")`` designs it; cached on disk,
    so that a worker need not import ``scipy.signal`` (most of a second)."""
    def build():
        import scipy.signal

        return {"sos": scipy.signal.butter(2, [low, high], btype="bandpass", fs=sr,
                                           output="sos")}

    return cached_tables("vad-band", [sr, low, high], build)["sos"]


@njit(cache=True)
def sosfilt(sos, y, zi):
    """``scipy.signal.sosfilt(sos, y, zi=zi)``'s output (float64) for the two sections
    (2, 6) :func:`band_filter` designs, with the state ``zi`` (2, 2) updated in place: the
    same transposed direct form II, operation for operation, its state held in registers.
    y : (n,) float32 or float64 (each sample taken as float64, exactly)."""
    out = np.empty(y.shape[0], np.float64)
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    z00, z01, z10, z11 = zi[0, 0], zi[0, 1], zi[1, 0], zi[1, 1]
    for n in range(y.shape[0]):
        x = np.float64(y[n])
        x1 = b00 * x + z00
        z00 = b01 * x - a01 * x1 + z01
        z01 = b02 * x - a02 * x1
        x2 = b10 * x1 + z10
        z10 = b11 * x1 - a11 * x2 + z11
        z11 = b12 * x1 - a12 * x2
        out[n] = x2
    zi[0, 0], zi[0, 1], zi[1, 0], zi[1, 1] = z00, z01, z10, z11
    return out
