"""Voice quality: jitter (local), shimmer (local, dB) and harmonics-to-noise ratio.

The definitions are eGeMAPS' (Eyben et al. 2016), which are Praat's:

- glottal pulses: within each run of pYIN-voiced frames (:func:`serfast.features.pitch.
  pitch_track`), one waveform peak per period, found by stepping one local period
  (``sr / F0`` of the nearest frame) from the run's largest peak forwards and backwards
  and taking the largest sample, of the same polarity, within 0.8-1.25 periods; the peak
  time and height are refined by parabolic interpolation. ``T_i`` is the time between
  pulses, ``A_i`` the height of the pulse opening period ``i``;
- ``jitter_local`` = mean |T_i - T_(i-1)| / mean T_i (a ratio, not %), over consecutive
  periods of one run whose lengths differ by at most a factor 1.3 (Praat's "maximum period
  factor"); periods outside 0.1-20 ms are ignored;
- ``shimmer_local_db`` = mean |20 log10(A_i / A_(i-1))|, dB, over the same consecutive
  period pairs whose amplitudes differ by at most a factor 1.6 (Praat's "maximum amplitude
  factor");
- ``hnr_db`` = mean over voiced frames of 10 log10(r / (1 - r)), dB, where r is the
  largest normalised cross-correlation, over lags within 3 % of the frame's period, of a
  window of ``sr / 60`` samples centred half a lag before the frame centre with the window
  one lag later (Praat's "To Harmonicity (cc)" with one period per window); r is capped
  to [1e-6, 1 - 1e-6] (HNR within +-60 dB).

Reference: Praat through ``praat-parselmouth`` ("To PointProcess (periodic, cc)", "Get
jitter (local)", "Get shimmer (local_dB)", "To Harmonicity (cc)" + "Get mean", pitch range
60-500 Hz as the tracker's); see tests/test_voice.py for the agreement measured.

A clip with fewer than two usable period pairs stores jitter and shimmer 0, and one with no
voiced frame stores HNR 0: the store stays finite and ``voiced_fraction`` says why.
"""

from __future__ import annotations

import math

import numpy as np

from .kernel_cache import njit
from .pitch import FMIN, HOP_LENGTH, pitch_tracks

__all__ = ["VOICE_COLUMNS", "voice_stats", "voice_row", "voice_rows"]

VOICE_COLUMNS = ["jitter_local", "shimmer_local_db", "hnr_db"]

#: Praat's period range (s), maximum period factor and maximum amplitude factor.
_PERIOD_FLOOR, _PERIOD_CEILING = 0.0001, 0.02
_PERIOD_FACTOR, _AMPLITUDE_FACTOR = 1.3, 1.6
#: Search window for the next pulse, in local periods.
_EARLY, _LATE = 0.8, 1.25
#: Correlation cap: HNR within +-60 dB.
_R_EPS = 1e-6
#: Praat's silence threshold (fraction of the clip's peak).
_SILENCE = 0.1


@njit(cache=True)
def _peak(y, lo, hi, sign):
    """Index of the largest ``sign * y`` in ``[lo, hi)`` (``lo < hi``)."""
    best = lo
    for i in range(lo + 1, hi):
        if sign * y[i] > sign * y[best]:
            best = i
    return best


@njit(cache=True)
def _refine(y, i, sign):
    """Parabolic-interpolated time (samples) and height (>= 0) of the peak at ``y[i]``."""
    v = sign * np.float64(y[i])
    if i == 0 or i == y.shape[0] - 1:
        return float(i), abs(v)
    a = sign * np.float64(y[i - 1])
    c = sign * np.float64(y[i + 1])
    den = a - 2 * v + c
    if den >= 0.0:
        return float(i), abs(v)
    shift = 0.5 * (a - c) / den
    return i + shift, abs(v - 0.25 * (a - c) * shift)


@njit(cache=True)
def _period_at(f0, t, sr, hop):
    """Local period in samples at sample ``t``: ``sr / F0`` of the nearest frame."""
    frame = min(max(int(t / hop + 0.5), 0), f0.shape[0] - 1)
    return sr / f0[frame]


@njit(cache=True)
def _window_correlation(y, energy, a, b, width):
    """Normalised correlation of ``y[a:a + width]`` with ``y[b:b + width]``; ``energy`` is
    the prefix sum of ``y ** 2`` (float64, length n + 1)."""
    xy = 0.0
    for i in range(width):
        xy += np.float64(y[a + i]) * y[b + i]
    xx = energy[a + width] - energy[a]
    yy = energy[b + width] - energy[b]
    if xx <= 0.0 or yy <= 0.0:
        return 0.0
    return xy / math.sqrt(xx * yy)


@njit(cache=True)
def _next_pulse(y, energy, t, period, direction, a, b):
    """The pulse one period from pulse ``t`` (samples) in ``direction`` (+1 or -1) within
    ``[a, b)``: the lag in 0.8-1.25 periods whose one-period window correlates best with
    the window at ``t``, refined by a parabola. Returns (time, correlation), or (-1, 0)
    where a window would leave ``[a, b)``."""
    width = max(int(period + 0.5), 2)
    it = int(t + 0.5)
    start = it - width // 2
    lo = int(math.ceil(_EARLY * period))
    hi = int(_LATE * period) + 1
    if start < a or start + width > b:
        return -1.0, 0.0
    best_lag = 0
    best = -2.0
    prev = -2.0
    r_before = -2.0
    r_after = -2.0
    for lag in range(lo, hi + 1):
        other = start + direction * lag
        if other < a or other + width > b:
            break
        r = _window_correlation(y, energy, start, other, width)
        if best_lag == lag - 1:
            r_after = r
        if r > best:
            best = r
            best_lag = lag
            r_before = prev
            r_after = -2.0
        prev = r
    if best_lag == 0:
        return -1.0, 0.0
    shift = 0.0
    if r_before > -2.0 and r_after > -2.0:
        den = r_before - 2 * best + r_after
        if den < 0.0:
            shift = 0.5 * (r_before - r_after) / den
    return t + direction * (best_lag + shift), best


@njit(cache=True)
def _run_pulses(y, energy, f0, sr, hop, a, b, times):
    """Pulses of the voiced stretch of samples ``[a, b)`` (Praat's periodic cc point
    process): from the largest absolute peak in the stretch's middle period, one pulse per
    period both ways while the correlation exceeds 0.3. Returns how many, written in time
    order into ``times``."""
    middle = (a + b) // 2
    period = _period_at(f0, middle, sr, hop)
    lo = max(int(middle - period / 2), a)
    hi = min(int(middle + period / 2) + 1, b)
    centre = _peak(np.abs(y), lo, hi, 1.0)
    n = 0
    t = float(centre)
    while True:
        t, r = _next_pulse(y, energy, t, _period_at(f0, t, sr, hop), -1, a, b)
        if t < 0 or r < 0.3:
            break
        times[n] = t
        n += 1
    times[:n] = times[:n][::-1].copy()
    times[n] = float(centre)
    n += 1
    t = float(centre)
    while True:
        t, r = _next_pulse(y, energy, t, _period_at(f0, t, sr, hop), 1, a, b)
        if t < 0 or r < 0.3:
            break
        times[n] = t
        n += 1
    return n


@njit(cache=True)
def _hann_rms(y, t, left, right):
    """RMS of ``y`` around time ``t`` (samples) under a Hann window reaching ``left``
    samples before and ``right`` after it (Praat's ``Sound_getHannWindowedRms``)."""
    lo = max(int(math.ceil(t - left)), 0)
    hi = min(int(t + right), y.shape[0] - 1)
    total = 0.0
    weight = 0.0
    for i in range(lo, hi + 1):
        width = left if i < t else right
        w = 0.5 + 0.5 * math.cos(math.pi * (i - t) / width)
        v = np.float64(y[i]) * w
        total += v * v
        weight += w * w
    if weight <= 0.0:
        return 0.0
    return math.sqrt(total / weight)


@njit(cache=True)
def _correlation(y, centre, lag, width):
    """Normalised cross-correlation of ``y`` over two ``width``-sample windows ``lag``
    apart, centred on ``centre``; 0 where a window leaves the clip or is silent."""
    start = centre - (lag + width) // 2
    if start < 0 or start + lag + width > y.shape[0]:
        return 0.0
    xy = 0.0
    xx = 0.0
    yy = 0.0
    for i in range(start, start + width):
        u = np.float64(y[i])
        v = np.float64(y[i + lag])
        xy += u * v
        xx += u * u
        yy += v * v
    if xx <= 0.0 or yy <= 0.0:
        return 0.0
    return xy / math.sqrt(xx * yy)


@njit(cache=True)
def _periodicity(y, centre, period, width):
    """Best normalised cross-correlation of two ``width``-sample windows around ``centre``
    over lags within 3 % of ``period`` (parabola-refined), and the largest |y| they span.
    Returns (0, 0) where a window leaves the clip."""
    lo = max(int(0.97 * period), 1)
    hi = int(1.03 * period) + 2
    start = centre - (hi + width) // 2
    if start < 0 or start + hi + width > y.shape[0]:
        return 0.0, 0.0
    best = -2.0
    best_lag = lo
    rs = np.empty(hi - lo + 1)
    for lag in range(lo, hi + 1):
        rs[lag - lo] = _correlation(y, centre, lag, width)
        if rs[lag - lo] > best:
            best = rs[lag - lo]
            best_lag = lag
    i = best_lag - lo
    if 0 < i < rs.shape[0] - 1:
        den = rs[i - 1] - 2 * best + rs[i + 1]
        if den < 0.0:
            best -= 0.125 * (rs[i - 1] - rs[i + 1]) ** 2 / den
    peak = 0.0
    for j in range(start, start + hi + width):
        peak = max(peak, abs(np.float64(y[j])))
    return best, peak


@njit(cache=True)
def voice_kernel(y, f0, voiced, period_f0, sr, hop, width, out):
    """Jitter, shimmer (dB) and HNR (dB) of one clip (module docstring) into ``out`` (3,).

    y : (n,) float32.  f0 : (T,) float64 Hz (read where voiced).  voiced : (T,) bool.
    width : HNR window in samples.
    """
    n_frames = voiced.shape[0]
    n = y.shape[0]
    times = np.empty(n, np.float64)
    amp_times = np.empty(n, np.float64)
    amps = np.empty(n, np.float64)
    energy = np.zeros(n + 1, np.float64)
    for i in range(n):
        energy[i + 1] = energy[i] + np.float64(y[i]) * y[i]
    dt_sum = 0.0
    period_sum = 0.0
    n_pairs = 0
    n_periods = 0
    amp_sum = 0.0
    n_amp = 0
    hnr_sum = 0.0
    n_hnr = 0
    global_peak = 0.0
    for i in range(n):
        global_peak = max(global_peak, abs(np.float64(y[i])))
    for k in range(n_frames):  # HNR: Praat's harmonicity frames
        r, local_peak = _periodicity(y, k * hop, sr / period_f0[k], width)
        if r <= 0.0 or global_peak <= 0.0:
            continue
        if r <= 2.0 - local_peak / global_peak / _SILENCE:  # Praat's unvoiced strength
            continue
        r = min(r, 1.0 - _R_EPS)
        hnr_sum += 10.0 * math.log10(r / (1.0 - r))
        n_hnr += 1
    t = 0
    while t < n_frames:
        if not voiced[t]:
            t += 1
            continue
        u = t
        while u < n_frames and voiced[u]:
            u += 1
        a = max((t * hop) - hop // 2, 0)
        b = min((u - 1) * hop + hop // 2 + 1, n)
        if b - a >= 3:
            m = _run_pulses(y, energy, f0, sr, hop, a, b, times)
            for i in range(1, m):
                period = (times[i] - times[i - 1]) / sr
                if _PERIOD_FLOOR <= period <= _PERIOD_CEILING:
                    period_sum += period
                    n_periods += 1
            n_amps = 0
            for i in range(1, m - 1):
                p1 = (times[i] - times[i - 1]) / sr
                p2 = (times[i + 1] - times[i]) / sr
                if not (_PERIOD_FLOOR <= p1 <= _PERIOD_CEILING
                        and _PERIOD_FLOOR <= p2 <= _PERIOD_CEILING):
                    continue
                if max(p1, p2) > _PERIOD_FACTOR * min(p1, p2):
                    continue
                dt_sum += abs(p2 - p1)
                n_pairs += 1
                amp = _hann_rms(y, times[i], 0.2 * p1 * sr, 0.2 * p2 * sr)
                if amp > 0.0:
                    amp_times[n_amps] = times[i]
                    amps[n_amps] = amp
                    n_amps += 1
            for j in range(1, n_amps):
                gap = (amp_times[j] - amp_times[j - 1]) / sr
                a1 = amps[j - 1]
                a2 = amps[j]
                if (_PERIOD_FLOOR <= gap <= _PERIOD_CEILING
                        and max(a1, a2) <= _AMPLITUDE_FACTOR * min(a1, a2)):
                    amp_sum += abs(20.0 * math.log10(a2 / a1))
                    n_amp += 1
        t = u
    out[0] = dt_sum / n_pairs / (period_sum / n_periods) if n_pairs > 0 else 0.0
    out[1] = amp_sum / n_amp if n_amp > 0 else 0.0
    out[2] = hnr_sum / n_hnr if n_hnr > 0 else 0.0


def voice_stats(y: np.ndarray, sr: int, f0: np.ndarray, voiced: np.ndarray,
                yin_f0: np.ndarray) -> np.ndarray:
    """:data:`VOICE_COLUMNS` of a clip given its pYIN track: (3,) float32, finite.

    y : (n,) float32 at ``sr``.  f0 : (T,) Hz, NaN or anything where unvoiced.
    voiced : (T,) bool, T = 1 + n // HOP_LENGTH.
    """
    out = np.zeros(len(VOICE_COLUMNS))
    f0 = np.where(voiced, f0, FMIN).astype(np.float64)
    period_f0 = np.where(voiced, f0, yin_f0).astype(np.float64)
    voice_kernel(np.ascontiguousarray(y, np.float32), f0, np.ascontiguousarray(voiced),
                 period_f0, sr,
                 HOP_LENGTH, int(round(sr / FMIN)), out)
    return out.astype(np.float32)


def voice_row(y: np.ndarray, sr: int) -> np.ndarray:
    """:data:`VOICE_COLUMNS` of one clip: (3,) float32, always finite.

    y : (n,) float32, n >= 1, mono at ``sr``.
    """
    f0, voiced, _, yin_f0 = pitch_tracks(y, sr)
    return voice_stats(y, sr, f0, voiced, yin_f0)


def voice_rows(clips, sr: int) -> np.ndarray:
    """:func:`voice_row` of each clip in ``clips``: (n_clips, 3) float32."""
    return np.array([voice_row(y, sr) for y in clips], np.float32).reshape(-1, len(VOICE_COLUMNS))
