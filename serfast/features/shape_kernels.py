"""Numba kernels of the spectral shape (:mod:`serfast.features.shape`) on the CPU: the
contrast bands' quantile means and the roll-off bin of every frame. Compiled with
``cache=True`` like the seed kernels; they compile on the first prosody clip.
"""

from __future__ import annotations

import numpy as np

from .kernel_cache import njit

__all__ = ["band_extremes", "rolloff_bins"]


@njit(cache=True)
def band_extremes(mag, lo, hi, count, out):
    """Mean of each band's ``count`` largest and ``count`` smallest magnitudes, per frame:
    the peak and valley of ``spectral_contrast`` (librosa sorts each band and averages
    its ends).

    mag : (n_frames, n_bins) float32.  lo, hi, count : (K,) int64, band ``k`` is bins
    ``[lo[k], hi[k])``, ``1 <= count[k] <= hi[k] - lo[k]``.  out : (n_frames, 2 K)
    float64: the peaks of the K bands, then their valleys. Each mean is of the same
    multiset of values as a sort would take, summed in float64.
    """
    n_bands = lo.shape[0]
    top = np.empty(count.max(), np.float32)  # ascending: top[0] leaves first
    low = np.empty(count.max(), np.float32)  # descending: low[0] leaves first
    for t in range(mag.shape[0]):
        m = mag[t]
        for k in range(n_bands):
            c = count[k]
            for j in range(c):  # seed both with the band's first c values
                _insert(top, j, m[lo[k] + j], 1.0)
                _insert(low, j, m[lo[k] + j], -1.0)
            for i in range(lo[k] + c, hi[k]):
                v = m[i]
                if v > top[0]:
                    _replace_first(top, c, v, 1.0)
                if v < low[0]:
                    _replace_first(low, c, v, -1.0)
            peak = 0.0
            valley = 0.0
            for j in range(c):
                peak += top[j]
                valley += low[j]
            out[t, k] = peak / c
            out[t, n_bands + k] = valley / c


@njit(cache=True)
def rolloff_bins(mag, percent, out):
    """``spectral_rolloff``'s bin per frame: how many bins' running sum of |X| stays below
    ``percent`` of the frame's total, capped at the last bin.

    mag : (n_frames, n_bins) float32.  percent : float32.  out : (n_frames,) int64. The
    running sum is float32 and in bin order, as NumPy's ``cumsum``.
    """
    n_bins = mag.shape[1]
    for t in range(mag.shape[0]):
        m = mag[t]
        total = np.float32(0.0)
        for k in range(n_bins):
            total += m[k]
        limit = percent * total
        acc = np.float32(0.0)
        below = 0
        for k in range(n_bins):
            acc += m[k]
            if acc < limit:
                below += 1
        out[t] = min(below, n_bins - 1)


@njit(cache=True, inline="always")
def _insert(buf, n, v, sign):
    """Insert ``v`` into ``buf[:n]``, kept ordered by ``sign * value`` ascending."""
    j = n
    while j > 0 and sign * buf[j - 1] > sign * v:
        buf[j] = buf[j - 1]
        j -= 1
    buf[j] = v


@njit(cache=True, inline="always")
def _replace_first(buf, n, v, sign):
    """Drop ``buf[0]`` and insert ``v`` into ``buf[:n]`` (ordered as :func:`_insert`)."""
    j = 0
    while j + 1 < n and sign * buf[j + 1] < sign * v:
        buf[j] = buf[j + 1]
        j += 1
    buf[j] = v
