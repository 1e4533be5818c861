"""Numba kernels of YIN and pYIN: the per-frame difference functions and the Viterbi decoder.

The arithmetic follows ``librosa.yin`` and ``librosa.pyin`` (librosa 0.11) operation by
operation, in the same precisions: float32 frames, energies and their running sums, float64
from the cumulative mean on. A clip takes three kernel calls around SciPy's FFT (which
gives the frames' autocorrelation): :func:`frame_padded` cuts the frames,
:func:`yin_frames` turns them into YIN's F0 and pYIN's observation candidates, and
:func:`viterbi_states` decodes pYIN's state sequence. All kernels are compiled with
``cache=True``, cached per user (:mod:`serfast.features.kernel_cache`).
"""

from __future__ import annotations

import math

import numpy as np

from .kernel_cache import njit

__all__ = ["frame_padded", "power_in_place", "yin_frames", "viterbi_states"]

#: ``util.tiny`` of a float64 array: librosa's guard against division by zero and log(0).
_TINY64 = np.finfo(np.float64).tiny
#: ``log(0 + tiny)``: the log-probability librosa's Viterbi gives an impossible event.
LOG_TINY = math.log(_TINY64)


@njit(cache=True)
def frame_padded(y, first, frame_length, hop, out):
    """Frames ``first, first + 1, ...`` of ``y`` padded with ``frame_length // 2`` zeros on
    each side (no window): librosa's ``center=True, pad_mode="constant"``.

    y : (n,) float32.  out : (count, frame_length) float32, filled in place: frame ``t`` is
    ``y[t * hop - frame_length // 2:][:frame_length]``, zero outside the clip.
    """
    n = y.shape[0]
    half = frame_length // 2
    for t in range(out.shape[0]):
        row = out[t]
        start = (first + t) * hop - half
        j0 = min(max(0, -start), frame_length)
        j1 = max(min(frame_length, n - start), j0)
        row[:j0] = np.float32(0.0)
        row[j0:j1] = y[start + j0:start + j1]
        row[j1:] = np.float32(0.0)


@njit(cache=True)
def power_in_place(spectrum):
    """Replace each value of ``spectrum`` (2-D complex) with ``real ** 2 + imag ** 2`` in its
    own precision, imaginary part 0: NumPy's ``spectrum.real ** 2 + spectrum.imag ** 2``,
    in the complex array an inverse real FFT reads without converting it first."""
    for k in range(spectrum.shape[0]):
        for j in range(spectrum.shape[1]):
            v = spectrum[k, j]
            spectrum[k, j] = v.real * v.real + v.imag * v.imag


@njit(cache=True)
def _cmnd(frame, acf, min_period, max_period, energy, diff, out):
    """Cumulative mean normalised difference of one frame (librosa's
    ``_cumulative_mean_normalized_difference``).

    frame : (frame_length,) float32.  acf : (>= max_period + 1,) float32 autocorrelation.
    energy, diff : float32 scratch of length >= max_period + 1.  out : (max_period -
    min_period + 1,) float64 receives d'(min_period .. max_period).
    """
    acc = np.float32(0.0)
    for m in range(max_period):  # running energy, float32 and in order as np.cumsum
        acc = acc + frame[m] * frame[m]
        energy[m] = acc
    two = np.float32(2.0)
    # librosa zeroes energy[0] before it subtracts the energies, so d(1) misses y[0]^2
    diff[1] = two * (acf[0] - acf[1]) - np.float32(0.0)
    for k in range(2, max_period + 1):
        diff[k] = two * (acf[0] - acf[k]) - energy[k - 1]
    running = np.float32(0.0)
    for k in range(1, max_period + 1):
        running = running + diff[k]
        if k >= min_period:
            # float32 running sum / int lag -> float64, as NumPy promotes it
            denominator = np.float64(running) / np.float64(k) + _TINY64
            out[k - min_period] = np.float64(diff[k]) / denominator


@njit(cache=True)
def _parabolic_shift(x, i):
    """Parabolic-interpolation offset of the optimum at ``x[i]`` (librosa's
    ``_parabolic_interpolation``): 0 at the ends and where it would move more than a bin."""
    if i == 0 or i == x.shape[0] - 1:
        return 0.0
    a = x[i + 1] + x[i - 1] - 2 * x[i]
    b = (x[i + 1] - x[i - 1]) / 2
    if abs(b) >= abs(a):
        return 0.0
    return -b / a


@njit(cache=True)
def _is_trough(x, i):
    """librosa's trough test of ``yin``/``pyin``: ``localmin`` inside, ``x[0] < x[1]`` at
    the start and ``x[-1] < x[-2]`` at the end."""
    last = x.shape[0] - 1
    if i == 0:
        return x[0] < x[1]
    if i == last:
        return x[last] < x[last - 1]
    return x[i] < x[i - 1] and x[i] <= x[i + 1]


@njit(cache=True)
def _first_threshold(h, thresholds):
    """The first ``j`` with ``h < thresholds[j + 1]`` (``len(thresholds) - 1`` if none);
    thresholds : increasing, from 0 to 1 in equal steps."""
    n_thr = thresholds.shape[0] - 1
    if not h < thresholds[n_thr]:
        return n_thr
    j = min(max(int(h * n_thr) - 1, 0), n_thr - 1)
    while not h < thresholds[j + 1]:
        j += 1
    while j > 0 and h < thresholds[j]:
        j -= 1
    return j


@njit(cache=True)
def _numpy_sum(x, n):
    """``np.sum(x[:n])`` for n <= 128 with NumPy's summation order (eight interleaved
    partial sums, combined pairwise, then the tail)."""
    if n < 8:
        s = 0.0
        for i in range(n):
            s += x[i]
        return s
    r0, r1, r2, r3 = x[0], x[1], x[2], x[3]
    r4, r5, r6, r7 = x[4], x[5], x[6], x[7]
    i = 8
    while i < n - n % 8:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        s += x[i]
        i += 1
    return s


@njit(cache=True)
def yin_frames(frames, acf, sr, fmin, min_period, max_period, trough_threshold,
               thresholds, beta_probs, boltzmann_pmf, no_trough_prob, n_bins,
               bins_per_octave, yin_f0, voiced_prob, cand_bin, cand_logp, n_cand):
    """YIN's F0 and pYIN's observations for every frame.

    frames : (T, frame_length) float32 from :func:`frame_padded`.  acf : (T, >= max_period
    + 1) float32, each frame's autocorrelation.  sr, fmin : Hz.  thresholds : (n_thr + 1,)
    float64, ``linspace(0, 1, n_thr + 1)``.  beta_probs : (n_thr,) float64, the beta prior's
    mass between thresholds.  boltzmann_pmf : (K + 1, K) float64, ``pmf[N, k]`` the
    Boltzmann prior of the k-th of N troughs.  n_bins : pitch bins of ``bins_per_octave``
    per octave from ``fmin``.

    Outputs, filled in place: yin_f0 (T,) float64 Hz (``librosa.yin``); voiced_prob (T,)
    float64; per frame ``t`` the ``n_cand[t]`` distinct voiced pitch bins with a non-zero
    observation probability, in increasing bin order, in ``cand_bin[t]`` (int32, (T, >=
    n_lags // 2 + 1): a frame has at most that many troughs) and their ``log(p + tiny)``
    in ``cand_logp[t]`` (float64, same shape).
    """
    n_frames = frames.shape[0]
    n_lags = max_period - min_period + 1
    n_thr = beta_probs.shape[0]
    energy = np.empty(max_period + 1, np.float32)
    diff = np.empty(max_period + 1, np.float32)
    cmnd = np.empty(n_lags, np.float64)
    troughs = np.empty(n_lags, np.int64)
    probs = np.empty(n_lags, np.float64)
    below_min = np.empty(n_thr, np.float64)
    entry = np.empty(n_lags, np.int64)
    members = np.empty(n_lags, np.int64)
    obs = np.zeros(n_bins + 1, np.float64)
    for t in range(n_frames):
        _cmnd(frames[t], acf[t], min_period, max_period, energy, diff, cmnd)
        # the troughs; librosa.yin takes the first under the threshold, else the global
        # minimum
        n_tr = 0
        best = -1
        arg_min = 0
        for i in range(n_lags):
            if cmnd[i] < cmnd[arg_min]:
                arg_min = i
            if _is_trough(cmnd, i):
                troughs[n_tr] = i
                n_tr += 1
                if best < 0 and cmnd[i] < trough_threshold:
                    best = i
        if best < 0:
            best = arg_min
        yin_f0[t] = sr / (min_period + best + _parabolic_shift(cmnd, best))
        n_cand[t] = 0
        if n_tr == 0:
            voiced_prob[t] = 0.0
            continue
        # trough r lies under thresholds[j + 1] for j >= entry[r]; at each j the troughs
        # under it (in period order) share the Boltzmann prior, summed over j in order
        for r in range(n_tr):
            probs[r] = 0.0
            entry[r] = _first_threshold(cmnd[troughs[r]], thresholds)
        order = np.argsort(entry[:n_tr], kind="mergesort")
        size = 0
        q = 0
        for j in range(n_thr):
            while q < n_tr and entry[order[q]] == j:  # insert, keeping period order
                r = order[q]
                m = size
                while m > 0 and members[m - 1] > r:
                    members[m] = members[m - 1]
                    m -= 1
                members[m] = r
                size += 1
                q += 1
            for m in range(size):
                probs[members[m]] += boltzmann_pmf[size, m] * beta_probs[j]
        g = 0
        for r in range(1, n_tr):
            if cmnd[troughs[r]] < cmnd[troughs[g]]:
                g = r
        n_below = 0
        for j in range(n_thr):
            if not cmnd[troughs[g]] < thresholds[j + 1]:
                below_min[n_below] = beta_probs[j]
                n_below += 1
        probs[g] += no_trough_prob * _numpy_sum(below_min, n_below)
        # candidates in increasing period; a later one in the same bin replaces it
        lo = n_bins
        hi = -1
        for r in range(n_tr):
            if probs[r] == 0.0:
                continue
            i = troughs[r]
            period = min_period + i + _parabolic_shift(cmnd, i)
            f0 = sr / period
            b = round(bins_per_octave * np.log2(f0 / fmin))
            b = min(max(b, 0), n_bins)
            obs[b] = probs[r]
            if b < n_bins:
                lo = min(lo, b)
                hi = max(hi, b)
        total = 0.0
        m = 0
        for b in range(lo, hi + 1):
            if obs[b] != 0.0:
                total += obs[b]
                cand_bin[t, m] = b
                cand_logp[t, m] = math.log(obs[b] + _TINY64)
                m += 1
                obs[b] = 0.0
        obs[n_bins] = 0.0
        n_cand[t] = m
        voiced_prob[t] = min(max(total, 0.0), 1.0)


#: Flags that let LLVM vectorise the max-plus loop; they change no result (a maximum is
#: exact in any order, and no value is NaN or infinite).
_MAX_PLUS = {"nnan", "ninf", "nsz", "reassoc"}


@njit(cache=True, fastmath=_MAX_PLUS)
def _advance(prev, log_trans_band, log_trans_src, voiced_top, log_trans_off, n_bins, half,
             log_voiced, log_unvoiced, out):
    """One Viterbi step: ``out[j] = log_prob[j] + max_k(prev[k] + log_trans[k, j])``.

    States are ``g * n_bins + b`` (g = 0 voiced, 1 unvoiced; b the pitch bin).
    log_trans_band, log_trans_src : the transitions' band by target and by source (see
    :func:`viterbi_states`).  log_voiced : (n_bins,) the voiced states' log observation
    probabilities; log_unvoiced : that of every unvoiced state.  voiced_top : (2,) the
    largest transition from a voiced state into group ``g_j``.

    Only maxima are computed, so any source that provably cannot reach a target's maximum
    may be skipped without changing a bit: transitions outside the band
    ``|b_k - b_j| <= half`` all weigh ``log_trans_off``, so their best is the best state
    plus it; unvoiced sources are swept densely; a voiced source is scattered only if its
    value plus its largest transition exceeds the smallest maximum so far (most voiced
    states carry a ``log(tiny)`` observation and never can).
    """
    n_states = 2 * n_bins
    best_all = prev[0]
    for k in range(1, n_states):
        best_all = max(best_all, prev[k])
    floor = best_all + log_trans_off
    n_offsets = log_trans_band.shape[2]
    out[:] = floor
    for o in range(n_offsets):  # unvoiced source b + o - half, for every target b
        lo = max(half - o, 0)
        hi = min(n_bins + half - o, n_bins)
        src = prev[n_bins + lo + o - half:n_bins + hi + o - half]
        to_voiced = log_trans_band[1, 0, o, lo:hi]
        to_unvoiced = log_trans_band[1, 1, o, lo:hi]
        voiced = out[lo:hi]
        unvoiced = out[n_bins + lo:n_bins + hi]
        for i in range(src.shape[0]):
            v = src[i] + to_voiced[i]
            voiced[i] = v if v > voiced[i] else voiced[i]
            u = src[i] + to_unvoiced[i]
            unvoiced[i] = u if u > unvoiced[i] else unvoiced[i]
    for gj in range(2):
        best = out[gj * n_bins:(gj + 1) * n_bins]
        lowest = best[0]
        for b in range(1, n_bins):
            lowest = min(lowest, best[b])
        top = voiced_top[gj]
        for k in range(n_bins):  # live voiced sources, scattered to their targets
            if not prev[k] + top > lowest:
                continue
            lo = max(k - half, 0)
            hi = min(k + half + 1, n_bins)
            row = log_trans_src[0, gj, k, lo - k + half:hi - k + half]
            dst = best[lo:hi]
            for i in range(dst.shape[0]):
                v = prev[k] + row[i]
                dst[i] = v if v > dst[i] else dst[i]
        if gj == 0:
            for b in range(n_bins):
                best[b] += log_voiced[b]
        else:
            for b in range(n_bins):
                best[b] += log_unvoiced


@njit(cache=True)
def _best_predecessor(row, log_trans_band, log_trans_off, n_bins, half, state):
    """The first ``k`` maximising ``row[k] + log_trans[k, state]`` (NumPy's ``argmax``):
    ``log_trans[k, state]`` is the band's where ``|b_k - b_state| <= half``, else
    ``log_trans_off``."""
    gj = state // n_bins
    bj = state - gj * n_bins
    lo = max(bj - half, 0)
    hi = min(bj + half + 1, n_bins)
    best = 0
    best_value = -np.inf
    for gk in range(2):
        base = gk * n_bins
        for bk in range(0, lo):
            v = row[base + bk] + log_trans_off
            if v > best_value:
                best_value = v
                best = base + bk
        for bk in range(lo, hi):
            v = row[base + bk] + log_trans_band[gk, gj, bk - bj + half, bj]
            if v > best_value:
                best_value = v
                best = base + bk
        for bk in range(hi, n_bins):
            v = row[base + bk] + log_trans_off
            if v > best_value:
                best_value = v
                best = base + bk
    return best


@njit(cache=True)
def _observe(n_cand, cand_bin, cand_logp, voiced_prob, n_bins, log_voiced):
    """Set ``log_voiced`` to a frame's voiced log observations (``LOG_TINY`` but at its
    candidates); returns the unvoiced states' log observation."""
    log_voiced[:] = LOG_TINY
    for m in range(n_cand):
        log_voiced[cand_bin[m]] = cand_logp[m]
    return math.log((1.0 - voiced_prob) / n_bins + _TINY64)


@njit(cache=True)
def viterbi_states(log_trans_band, log_trans_src, log_trans_off, log_p_init, n_bins,
                   offsets, cand_bin, cand_logp, voiced_prob, segment, states):
    """pYIN's most likely state sequence (librosa's ``sequence.viterbi``).

    log_trans_band : (2, 2, 2 * half + 1, n_bins) float64, ``log_trans[g_k * n_bins + b_j +
    o - half, g_j * n_bins + b_j]`` at ``[g_k, g_j, o, b_j]``.  log_trans_src : the same band by source, (2, 2, n_bins,
    2 * half + 1), ``log_trans[g_k * n_bins + b_k, g_j * n_bins + b_k + o - half]`` at
    ``[g_k, g_j, b_k, o]``.  log_trans_off : the log
    transition outside the band.  log_p_init : the log initial probability of every state.
    offsets, cand_bin, cand_logp : frame ``t``'s candidates of :func:`yin_frames` at
    ``offsets[t]:offsets[t + 1]`` of ``cand_bin`` and ``cand_logp``.  voiced_prob : (T,).
    segment : frames whose state values are held at once (memory ``segment * 2 * n_bins``
    float64); longer clips keep one row per segment and recompute the rest while tracing
    back.  states : (T,) int64, filled in place with ``g * n_bins + b``.

    Back-pointers are recomputed on the way back as the first best predecessor, the
    element NumPy's ``argmax`` picks in librosa's forward loop.
    """
    n_frames = voiced_prob.shape[0]
    n_states = 2 * n_bins
    half = (log_trans_band.shape[2] - 1) // 2
    n_seg = (n_frames + segment - 1) // segment
    starts = np.empty((n_seg, n_states), np.float64)
    rows = np.empty((min(segment, n_frames), n_states), np.float64)
    log_voiced = np.empty(n_bins, np.float64)
    voiced_top = np.empty(2, np.float64)
    for gj in range(2):
        voiced_top[gj] = log_trans_src[0, gj].max()
    log_unvoiced = _observe(offsets[0 + 1] - offsets[0], cand_bin[offsets[0]:offsets[0 + 1]],
                                    cand_logp[offsets[0]:offsets[0 + 1]], voiced_prob[0], n_bins,
                            log_voiced)
    for s in range(n_states):
        starts[0, s] = (log_voiced[s] if s < n_bins else log_unvoiced) + log_p_init
    if n_seg > 1:  # pass 1: the first row of every segment
        prev = starts[0].copy()
        nxt = np.empty(n_states, np.float64)
        for t in range(1, n_frames):
            log_unvoiced = _observe(offsets[t + 1] - offsets[t], cand_bin[offsets[t]:offsets[t + 1]],
                                    cand_logp[offsets[t]:offsets[t + 1]], voiced_prob[t],
                                    n_bins, log_voiced)
            _advance(prev, log_trans_band, log_trans_src, voiced_top, log_trans_off, n_bins, half, log_voiced,
                     log_unvoiced, nxt)
            prev, nxt = nxt, prev
            if t % segment == 0:
                starts[t // segment] = prev
    state = -1  # the state of frame t1 (the next segment's first frame)
    for seg in range(n_seg - 1, -1, -1):
        t0 = seg * segment
        t1 = min(t0 + segment, n_frames)
        rows[0] = starts[seg]
        for t in range(t0 + 1, t1):
            log_unvoiced = _observe(offsets[t + 1] - offsets[t], cand_bin[offsets[t]:offsets[t + 1]],
                                    cand_logp[offsets[t]:offsets[t + 1]], voiced_prob[t],
                                    n_bins, log_voiced)
            _advance(rows[t - 1 - t0], log_trans_band, log_trans_src, voiced_top, log_trans_off, n_bins, half,
                     log_voiced, log_unvoiced, rows[t - t0])
        last = rows[t1 - 1 - t0]
        if state < 0:
            state = 0
            for s in range(1, n_states):
                if last[s] > last[state]:
                    state = s
        else:
            state = _best_predecessor(last, log_trans_band, log_trans_off, n_bins, half,
                                      state)
        states[t1 - 1] = state
        for t in range(t1 - 1, t0, -1):
            state = _best_predecessor(rows[t - 1 - t0], log_trans_band, log_trans_off,
                                      n_bins, half, state)
            states[t - 1] = state
    return states
