"""Numba kernels of the streamed reduction of long clips (``serfast.features.long_clips``).

Each kernel adds one chunk of frames or samples to running sums, so a clip of any length
needs memory for one chunk only. The arithmetic is that of ``cpu_kernels.time_features``
and ``cpu_kernels._tuning_index``, split so that it can be fed chunk by chunk.
"""

from __future__ import annotations

import math

import numpy as np

from .cpu_kernels import tuning_bin
from .kernel_cache import njit
from .librosa_constants import ZCR_THRESHOLD

__all__ = ["LOW_BITS", "frame_time_sums", "median_of", "moment_sums", "tally_high",
           "tally_low"]

_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_NEGATIVE_BELOW = -ZCR_THRESHOLD
#: A candidate magnitude's float32 bit pattern is split into its high and low
#: ``LOW_BITS`` bits: the first pass counts the high halves, the second the low halves
#: of the few high values that hold the median.
LOW_BITS = 16


@njit(cache=True)
def frame_time_sums(y, first, count, n_fft, hop, out):
    """Add the zero crossings and the RMS of frames ``first .. first + count - 1`` to
    ``out`` (2,) float64 (crossings, sum of frame RMS).

    y : (n,) float32, the samples from the signal's sample ``base`` on, where frame
    ``first`` (counted from ``base / hop``) starts at ``first * hop - n_fft // 2`` in
    ``y``; that is negative only at the true start of the signal, and ``y`` ends only
    where the signal does, so clipping to ``y`` is librosa's padding (ZCR: crossings only
    inside the signal, first sample of a frame never one; RMS: zeros).
    """
    n = y.shape[0]
    half = n_fft // 2
    for t in range(count):
        p0 = (first + t) * hop - half
        lo = max(p0, 0)
        hi = min(p0 + n_fft, n)
        e = 0.0
        c = 0
        for i in range(lo, hi):
            v = np.float64(y[i])
            e += v * v
            if i > lo:
                c += int((np.float64(y[i]) < _NEGATIVE_BELOW)
                         != (np.float64(y[i - 1]) < _NEGATIVE_BELOW))
        out[0] += c
        out[1] += math.sqrt(max(e, 0.0) / n_fft)


@njit(cache=True, fastmath=_FAST)
def moment_sums(y, mean, out):
    """Add the sums of the 2nd, 3rd and 4th powers of ``y - mean`` (float64) to
    ``out`` (3,) float64; y : (n,) float32."""
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(y.shape[0]):
        d = y[i] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    out[0] += m2
    out[1] += m3
    out[2] += m4


@njit(cache=True)
def tally_high(pitches, mags, count, edges, bins_per_octave, table):
    """Count the first ``count`` piptrack candidates by the high bits of their magnitude
    and their tuning bin: ``table[bits >> LOW_BITS, cpu_kernels.tuning_bin(pitch)]``.

    mags : float32, all positive (a piptrack peak exceeds a share of its frame's max),
    so the order of their bit patterns is the order of their values.
    table : (2 ** (32 - LOW_BITS), len(edges)) int64, updated in place.
    """
    bits = mags[:count].view(np.uint32)
    for i in range(count):
        table[bits[i] >> LOW_BITS, tuning_bin(pitches[i], edges, bins_per_octave)] += 1


@njit(cache=True)
def tally_low(pitches, mags, count, edges, bins_per_octave, highs, tables):
    """Count the candidates whose magnitude has the high bits ``highs[k]`` by their low
    bits and tuning bin: ``tables[k, bits & (2 ** LOW_BITS - 1), tuning bin] += 1``.

    highs : (m,) int64.  tables : (m, 2 ** LOW_BITS, len(edges)) int32, in place.
    """
    bits = mags[:count].view(np.uint32)
    mask = np.uint32((1 << LOW_BITS) - 1)
    for i in range(count):
        high = bits[i] >> LOW_BITS
        for k in range(highs.shape[0]):
            if high == highs[k]:
                tables[k, bits[i] & mask, tuning_bin(pitches[i], edges, bins_per_octave)] += 1
                break


@njit(cache=True)
def median_of(values):
    """``np.median`` of (1 or 2,) float32 ``values`` as compiled in ``_tuning_index``: the
    median of all candidates is the median of its one or two middle values, with the
    same arithmetic and type."""
    return np.median(values)
