"""Voice quality: jitter (local), shimmer (local, dB) and harmonics-to-noise ratio.

The definitions are eGeMAPS' (Eyben et al. 2016), which are Praat's:

- glottal pulses (Praat's "To PointProcess (periodic, cc)"): within each run of frames
  that Praat's pitch tracker calls voiced (:func:`serfast.features.praat_voicing.praat_voicing`,
  on the pitch frame grid), a first pulse at the largest absolute sample of the run's middle
  period, then one pulse per local period (``sr / F0``, that tracker's F0 interpolated
  between frames) both ways:
  the lag of 0.8-1.25 periods whose one-period window correlates best with the current
  pulse's window, refined by a parabola, kept where that correlation exceeds 0.3.
  ``T_i`` is the time between consecutive pulses, ``A_i`` the RMS under a Hann window
  from 0.2 periods before to 0.2 periods after pulse ``i``;
- ``jitter_local`` = mean |T_i - T_(i-1)| / mean T_i (a ratio, not %), over consecutive
  periods of one run whose lengths differ by at most a factor 1.3 (Praat's "maximum period
  factor"); periods outside 0.1-20 ms are ignored;
- ``shimmer_local_db`` = mean |20 log10(A_i / A_(i-1))|, dB, over consecutive pulses
  with an amplitude (both neighbouring periods valid as for jitter) at most 20 ms apart
  whose amplitudes differ by at most a factor 1.6 (Praat's "maximum amplitude factor");
- ``hnr_db`` = mean of 10 log10(r / (1 - r)), dB, over the frames Praat's "To Harmonicity
  (cc)" calls voiced (r > 2 - peak / (0.1 * clip peak), its silence rule with voicing
  threshold 0; peaks about the local and the clip's mean), where r is the largest
  normalised cross-correlation, over lags within 2 samples of the frame's period (pYIN's,
  YIN's where pYIN says unvoiced), refined by a parabola, of two ``sr / 60``-sample windows
  one lag apart around the frame centre, less the local mean (over one 60 Hz period both
  sides), as Praat; r is capped below 1 - 1e-6 (HNR under 60 dB).

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
from .pitch import FMIN, HOP_LENGTH, pitch_stats, pitch_tracks
from .praat_voicing import praat_voicing

__all__ = ["VOICE_COLUMNS", "voice_stats", "voice_row", "voice_rows", "pitch_voice_row"]

VOICE_COLUMNS = ["jitter_local", "shimmer_local_db", "hnr_db"]

#: Praat's period range (s), maximum period factor and maximum amplitude factor.
_PERIOD_FLOOR, _PERIOD_CEILING = 0.0001, 0.02
_PERIOD_FACTOR, _AMPLITUDE_FACTOR = 1.3, 1.6
#: Search range for the next pulse, in local periods.
_EARLY, _LATE = 0.8, 1.25
#: HNR's lags: the frame's period (samples, rounded) +- this many.
_HNR_LAGS = 2
#: Correlation cap: HNR under 60 dB.
_R_EPS = 1e-6
#: Praat's silence threshold of "To Harmonicity (cc)" (fraction of the clip's peak).
_SILENCE = 0.1
#: HNR skips frames quieter than this fraction of the clip's peak: its silence rule would
#: need a correlation above 1.7 there.
_HNR_QUIET = 0.03


@njit(cache=True)
def _peak(y, lo, hi, sign):
    """Index of the largest ``sign * y`` in ``[lo, hi)`` (``lo < hi``)."""
    best = lo
    for i in range(lo + 1, hi):
        if sign * y[i] > sign * y[best]:
            best = i
    return best


@njit(cache=True)
def _period_at(f0, voiced, t, sr, hop):
    """Local period in samples at sample ``t``: ``sr / F0``, F0 interpolated linearly
    between the centres of voiced frames (held where the neighbour is unvoiced)."""
    if f0.shape[0] == 1:
        return sr / f0[0]
    x = min(max(t / hop, 0.0), f0.shape[0] - 1.0)
    i = min(int(x), f0.shape[0] - 2)
    w = x - i
    if not voiced[i + 1]:
        w = 0.0
    elif not voiced[i]:
        w = 1.0
    return sr / ((1.0 - w) * f0[i] + w * f0[i + 1])


@njit(cache=True, fastmath=True)
def _window_correlation(y, energy, total, a, b, width, mean):
    """Normalised correlation of ``y[a:a + width] - mean`` with ``y[b:b + width] - mean``;
    ``energy`` and ``total`` are the prefix sums of ``y ** 2`` and ``y`` (float64, length
    n + 1)."""
    u = y[a:a + width]
    v = y[b:b + width]
    m = np.float32(mean)
    xy = np.float32(0.0)  # float32 lanes: twice the SIMD width, ample for a correlation
    for i in range(width):
        xy += (u[i] - m) * (v[i] - m)
    xx = energy[a + width] - energy[a]
    yy = energy[b + width] - energy[b]
    if mean != 0.0:
        xx += mean * (width * mean - 2.0 * (total[a + width] - total[a]))
        yy += mean * (width * mean - 2.0 * (total[b + width] - total[b]))
    if xx <= 0.0 or yy <= 0.0:
        return 0.0
    return np.float64(xy) / math.sqrt(xx * yy)


@njit(cache=True)
def _next_pulse(y, energy, total, t, period, direction):
    """The pulse one period from pulse ``t`` (samples) in ``direction`` (+1 or -1), as
    Praat's ``Sound_findMaximumCorrelation``: the best local maximum, over lags of
    0.8-1.25 periods, of the correlation of the one-period window at ``t`` with the window
    one lag away, refined by a parabola. Returns (time, correlation, largest |y| of that
    window), correlation -1 where no window fits in the clip."""
    n = y.shape[0]
    half = 0.5 * period
    left1 = int(math.floor(t - half + 0.5))
    right1 = int(math.floor(t + half + 0.5))
    width = right1 - left1 + 1
    if left1 < 0 or right1 >= n:
        return t + direction * period, -1.0, 0.0
    lo = int(math.floor(_EARLY * period))
    hi = int(math.ceil(_LATE * period))
    best = -1.0
    best_lag = 0
    best_peak = 0.0
    r1 = r2 = r3 = 0.0
    r1_best = r3_best = 0.0
    for lag in range(lo - 1, hi + 2):
        left2 = left1 + direction * lag
        r1 = r2
        r2 = r3
        if left2 < 0 or left2 + width > n:
            r3 = 0.0
        else:
            r3 = _window_correlation(y, energy, total, left1, left2, width, 0.0)
        if lag - 1 >= lo and r2 > best and r2 >= r1 and r2 >= r3:
            best = r2
            r1_best = r1
            r3_best = r3
            best_lag = lag - 1
    if best <= -1.0:
        return t + direction * period, -1.0, 0.0
    other = left1 + direction * best_lag
    for i in range(other, other + width):
        best_peak = max(best_peak, abs(np.float64(y[i])))
    d2r = 2 * best - r1_best - r3_best
    shift = 0.0
    if d2r != 0.0:
        dr = 0.5 * (r3_best - r1_best)
        best += 0.5 * dr * dr / d2r
        shift = dr / d2r
    return t + direction * (best_lag + shift), best, best_peak


@njit(cache=True)
def _run_pulses(y, energy, total, f0, voiced, sr, hop, a, b, global_peak, times):
    """Pulses of the voiced stretch of samples ``[a, b)`` (Praat's
    ``Sound_Pitch_to_PointProcess_cc``): from the largest absolute peak in the stretch's
    middle period, one pulse per period both ways until the stretch ends, kept where the
    correlation exceeds 0.3 and the window's peak 1 % of the clip's (0.7 and 2.3 % for the
    one beyond the ends). Returns how many, written in time order into ``times``."""
    middle = (a + b) // 2
    period = _period_at(f0, voiced, middle, sr, hop)
    lo = max(int(middle - period / 2), 0)
    hi = min(int(middle + period / 2) + 1, y.shape[0])
    centre = float(_peak(np.abs(y), lo, hi, 1.0))
    n = 0
    for direction in (-1, 1):
        if direction == 1:  # the backward pulses, stored reversed, then the centre
            times[:n] = times[:n][::-1].copy()
            times[n] = centre
            n += 1
        t = centre
        while True:
            period = _period_at(f0, voiced, t, sr, hop)
            t, r, peak = _next_pulse(y, energy, total, t, period, direction)
            if n >= times.shape[0]:
                break
            if t < a or t >= b:
                if r > 0.7 and peak > 0.023333 * global_peak:
                    times[n] = t
                    n += 1
                break
            if r > 0.3 and (peak == 0.0 or peak > 0.01 * global_peak):
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
def _local_peak(y, centre, period, width, mean):
    """Largest |y - mean| over the windows :func:`_periodicity` reads (0 where they leave
    the clip)."""
    hi = int(period + 0.5) + _HNR_LAGS
    start = centre - (hi + width) // 2
    if start < 0 or start + hi + width > y.shape[0]:
        return 0.0
    peak = 0.0
    for j in range(start, start + hi + width):
        peak = max(peak, abs(np.float64(y[j]) - mean))
    return peak


@njit(cache=True)
def _periodicity(y, energy, total, mean, centre, period, width):
    """Best normalised cross-correlation of two ``width``-sample windows around ``centre``,
    less ``mean``, over the lags within ``_HNR_LAGS`` samples of ``period``, refined by a
    parabola."""
    lo = max(int(period + 0.5) - _HNR_LAGS, 1)
    hi = int(period + 0.5) + _HNR_LAGS
    best = -2.0
    best_lag = lo
    rs = np.empty(hi - lo + 1)
    for lag in range(lo, hi + 1):
        left = centre - (lag + width) // 2
        rs[lag - lo] = _window_correlation(y, energy, total, left, left + lag, width, mean)
        if rs[lag - lo] > best:
            best = rs[lag - lo]
            best_lag = lag
    i = best_lag - lo
    if 0 < i < rs.shape[0] - 1:
        den = rs[i - 1] - 2 * best + rs[i + 1]
        if den < 0.0:
            best -= 0.125 * (rs[i - 1] - rs[i + 1]) ** 2 / den
    return best


@njit(cache=True)
def voice_kernel(y, f0, voiced, period_f0, sr, hop, width, max_f0, out):
    """Jitter, shimmer (dB) and HNR (dB) of one clip (module docstring) into ``out`` (3,).

    y : (n,) float32.  f0, voiced : (T,) float64 Hz (read where voiced) and bool, the
    voicing of the pulse search.  period_f0 : (T,) float64 Hz, the period of each HNR
    frame.  width : HNR window in samples.  max_f0 : the largest F0 of ``f0``, Hz (sizes
    the pulse buffers).
    """
    n_frames = voiced.shape[0]
    n = y.shape[0]
    # pulses of a run are over 0.8 periods - 2 samples apart, plus one beyond each end
    most = int(n / max(_EARLY * sr / max_f0 - 2.0, 1.0)) + 4
    times = np.empty(most, np.float64)
    amp_times = np.empty(most, np.float64)
    amps = np.empty(most, np.float64)
    energy = np.zeros(n + 1, np.float64)
    total = np.zeros(n + 1, np.float64)
    for i in range(n):
        energy[i + 1] = energy[i] + np.float64(y[i]) * y[i]
        total[i + 1] = total[i] + y[i]
    dt_sum = 0.0
    period_sum = 0.0
    n_pairs = 0
    n_periods = 0
    amp_sum = 0.0
    n_amp = 0
    hnr_sum = 0.0
    n_hnr = 0
    global_peak = 0.0
    hnr_peak = 0.0  # Praat's harmonicity: the peak about the clip's mean
    clip_mean = total[n] / max(n, 1)
    for i in range(n):
        global_peak = max(global_peak, abs(np.float64(y[i])))
        hnr_peak = max(hnr_peak, abs(np.float64(y[i]) - clip_mean))
    longest = int(sr / FMIN)
    for k in range(n_frames):  # HNR: Praat's harmonicity frames
        period = sr / period_f0[k]
        c = k * hop
        lo = max(c + 1 - longest, 0)
        hi = min(c + longest + 1, n)
        mean = (total[hi] - total[lo]) / max(hi - lo, 1)  # one longest period both sides
        local_peak = _local_peak(y, c, period, width, mean)
        if not local_peak > _HNR_QUIET * hnr_peak:
            continue
        r = _periodicity(y, energy, total, mean, c, period, width)
        if r <= 0.0:
            continue
        if r <= 2.0 - local_peak / hnr_peak / _SILENCE:  # Praat's unvoiced strength
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
            m = _run_pulses(y, energy, total, f0, voiced, sr, hop, a, b, global_peak, times)
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
                yin_f0: np.ndarray, pulse_track=None) -> np.ndarray:
    """:data:`VOICE_COLUMNS` of a clip given its pYIN and YIN tracks: (3,) float32, finite.

    y : (n,) float32 at ``sr``.  f0 : (T,) Hz, NaN or anything where unvoiced.
    voiced : (T,) bool, T = 1 + n // HOP_LENGTH.  yin_f0 : (T,) Hz.  pYIN's F0 (YIN's where
    it says unvoiced) sets the HNR periods; the pulses follow Praat's voicing,
    ``pulse_track`` (``praat_voicing(y, sr, T)``'s ``(f0, voiced)``) where it is known.
    """
    out = np.zeros(len(VOICE_COLUMNS))
    period_f0 = np.where(voiced, f0, yin_f0).astype(np.float64)
    pulse_f0, pulse_voiced = pulse_track or praat_voicing(y, sr, len(voiced))
    pulse_f0 = np.where(pulse_voiced, pulse_f0, FMIN)
    voice_kernel(np.ascontiguousarray(y, np.float32), pulse_f0, pulse_voiced, period_f0, sr,
                 HOP_LENGTH, int(round(sr / FMIN)), float(pulse_f0.max(initial=FMIN)), out)
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


def pitch_voice_row(y: np.ndarray, sr: int) -> np.ndarray:
    """``PITCH_COLUMNS + VOICE_COLUMNS`` of one clip from a single pYIN/YIN pass:
    (len(PITCH_COLUMNS) + len(VOICE_COLUMNS),) float32, always finite, equal to
    ``concatenate([pitch_row(y, sr), voice_row(y, sr)])``.

    y : (n,) float32, n >= 1, mono at ``sr``.
    """
    f0, voiced, prob, yin_f0 = pitch_tracks(y, sr)
    return np.concatenate([pitch_stats(f0, voiced, prob, sr),
                           voice_stats(y, sr, f0, voiced, yin_f0)])
