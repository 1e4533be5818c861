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
    """``scipy.signal.sosfilt(sos, y, zi=zi)``'s output (float64, like ``y``), with the
    state ``zi`` (n_sections, 2) updated in place: the same transposed direct form II,
    operation for operation."""
    out = np.empty_like(y)
    for n in range(y.shape[0]):
        x = y[n]
        for s in range(sos.shape[0]):
            x_new = sos[s, 0] * x + zi[s, 0]
            zi[s, 0] = sos[s, 1] * x - sos[s, 4] * x_new + zi[s, 1]
            zi[s, 1] = sos[s, 2] * x - sos[s, 5] * x_new
            x = x_new
        out[n] = x
    return out
