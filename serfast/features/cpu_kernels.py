"""Numba kernels of the CPU backend: the fused feature computation.

One STFT per clip feeds every spectral feature; the time-domain features read the signal
once. A clip takes three kernel calls around SciPy's FFT: :func:`frame_clip` cuts the
frames, :func:`spectrum_frames` turns their spectra into per-frame values (|X|, mel power,
centroid, bandwidth, pitch candidates) and :func:`clip_finish` reduces those to the clip's
row. All kernels are compiled with ``cache=True`` so only the first run on a machine pays
for compilation (the cache is a per-user folder: :mod:`serfast.features.kernel_cache`).

The arithmetic follows librosa 0.11 step by step (``serfast.features.cpu`` states the
reference definition), with librosa's constants from ``librosa_constants``; comments name
the librosa function each block reproduces.
"""

from __future__ import annotations

import math

import numpy as np

from .kernel_cache import njit
from .librosa_constants import (OCTAVE_ZERO_HZ, PIPTRACK_THRESHOLD, TINY32, VARIANCE_FLOOR,
                                ZCR_THRESHOLD)

__all__ = ["MEL_BLOCK", "block_crossings", "clip_finish", "crossing", "frame_clip",
           "spectrum_frames", "time_features", "tuning_bin"]

_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
#: Samples below this are negative for the zero-crossing rate.
_NEGATIVE_BELOW = -ZCR_THRESHOLD
#: piptrack's peak threshold as a share of the frame's max, in the kernels' float32.
_PEAK_SHARE = np.float32(PIPTRACK_THRESHOLD)


@njit(cache=True)
def frame_clip(y, first, window, hop, out):
    """Cut centred, zero-padded, windowed STFT frames ``first, first + 1, ...`` of a clip.

    y : (n,) float32.  window : (n_fft,) float32.  out : (n_frames, n_fft) float32, filled
    in place: frame ``t`` is ``y[t * hop - n_fft // 2 :][:n_fft] * window``, zero where it
    overhangs the clip (librosa's ``stft(center=True, pad_mode="constant")``).
    """
    n_fft = window.shape[0]
    n = y.shape[0]
    for t in range(out.shape[0]):
        row = out[t]
        start = (first + t) * hop - n_fft // 2
        j0 = min(max(0, -start), n_fft)  # [j0, j1) of the frame lies inside the clip
        j1 = max(min(n_fft, n - start), j0)
        row[:j0] = np.float32(0.0)
        src = y[start + j0:start + j1]
        win = window[j0:j1]
        dst = row[j0:j1]
        for i in range(src.shape[0]):  # one long loop over views: vectorised
            dst[i] = src[i] * win[i]
        row[j1:] = np.float32(0.0)


@njit(cache=True, inline="always")
def _crosses(before, now):
    """1 if samples ``before`` and ``now`` lie on different sides of zero (librosa's ZCR:
    |x| <= ``ZCR_THRESHOLD`` counts as non-negative), else 0."""
    return int((np.float64(now) < _NEGATIVE_BELOW) != (np.float64(before) < _NEGATIVE_BELOW))


@njit(cache=True, inline="always")
def crossing(y, i):
    """:func:`_crosses` between ``y[i - 1]`` and ``y[i]``."""
    return _crosses(y[i - 1], y[i])


@njit(cache=True, inline="always")
def block_crossings(y, a, b):
    """Zero crossings into the samples [a, b) of ``y`` (sample 0 has no left neighbour)."""
    lo = max(a, 1)
    now = y[lo:b]
    before = y[lo - 1:b - 1]
    c = 0
    for i in range(now.shape[0]):  # a branch-free loop over views: vectorised
        c += _crosses(before[i], now[i])
    return c


@njit(cache=True, fastmath=_FAST)
def time_features(y, n_fft, hop, n_frames, out):
    """ZCR mean, RMS mean and the four waveform moments of one clip.

    y : (n,) float32, n >= 1.  n_frames : the frames of the centred STFT
    (``serfast.features.spec.n_frames``).  out : (6,) float64 receives
    ``zcr_mean, rms_mean, mean, var, skew, kurtosis`` (Fisher kurtosis, biased moments as
    ``scipy.stats``; skew and kurtosis are 0 for a constant signal).

    ZCR: ``librosa.feature.zero_crossing_rate`` (edge padding, |x| <= ``ZCR_THRESHOLD``
    counts as 0, first sample of each frame never a crossing). RMS:
    ``librosa.feature.rms`` (zero padding). Edge padding repeats the end samples, so
    crossings only occur inside ``y``.
    """
    n = y.shape[0]
    half = n_fft // 2
    # Per hop-long block: squared sum and zero crossings (independent sums, unlike a
    # running prefix). Frame t starts at t * hop - half; with half a multiple of hop it
    # covers whole blocks, so frame sums are sums of block sums.
    n_blocks = (n + hop - 1) // hop
    block_energy = np.zeros(n_blocks, np.float64)
    block_cross = np.zeros(n_blocks, np.int64)
    total = 0.0
    for blk in range(n_blocks):
        a = blk * hop
        b = min(a + hop, n)
        seg = y[a:b]
        e = 0.0
        s = 0.0
        for i in range(seg.shape[0]):  # branch-free loops over views: vectorised
            v = np.float64(seg[i])
            e += v * v
            s += v
        block_energy[blk] = e
        block_cross[blk] = block_crossings(y, a, b)
        total += s
    per_frame = n_fft // hop
    aligned = half % hop == 0 and n_fft % hop == 0
    zcr = 0.0
    rms = 0.0
    for t in range(n_frames):
        p0 = t * hop - half
        if aligned:
            first = p0 // hop  # may be negative: blocks before the clip are empty
            e = 0.0
            c = 0
            for blk in range(max(first, 0), min(first + per_frame, n_blocks)):
                e += block_energy[blk]
                c += block_cross[blk]
            if 1 <= p0 < n:  # the first sample of a frame is never a crossing
                c -= crossing(y, p0)
        else:
            e = 0.0
            c = 0
            for i in range(max(p0, 0), min(p0 + n_fft, n)):
                e += np.float64(y[i]) * y[i]
                if i > max(p0, 0):
                    c += crossing(y, i)
        zcr += c
        rms += math.sqrt(max(e, 0.0) / n_fft)
    mean = total / n
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(n):
        d = y[i] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    m2 /= n
    m3 /= n
    m4 /= n
    out[0] = zcr / n_fft / n_frames
    out[1] = rms / n_frames
    out[2] = mean
    out[3] = m2
    if m2 > VARIANCE_FLOOR:
        out[4] = m3 / m2 ** 1.5
        out[5] = m4 / (m2 * m2) - 3.0
    else:
        out[4] = 0.0
        out[5] = 0.0


#: Frames whose mel bands :func:`spectrum_frames` sums together (one SIMD register of
#: float32 accumulators per band and bin, instead of one latency-bound chain per frame).
MEL_BLOCK = 8


@njit(cache=True)
def _int_max(bits):
    """Largest of ``bits`` (int32). On the bit patterns of non-negative float32 values this
    is the bit pattern of their max, and it vectorises where a float max does not."""
    top = np.int32(0)
    for i in range(bits.shape[0]):
        top = max(top, bits[i])
    return top


@njit(cache=True)
def _pitch_candidates(mag, peak, k_lo, k_hi, sr_over_nfft, is_peak, pitches, mags, count):
    """``librosa.piptrack`` on one frame: append (pitch Hz, magnitude) of every local
    peak above ``PIPTRACK_THRESHOLD`` * the frame's max within bins [k_lo, k_hi); returns
    the new count.

    A bin above the threshold is a peak of the thresholded spectrum (librosa's
    ``localmax(S * (S > ref))``) exactly when it is a peak of the raw one, since a
    neighbour at or below the threshold is below the bin anyway. So the test is one
    branch-free pass; only the few peaks take the slow path. is_peak : (k_hi - k_lo,)
    bool scratch. Compiled without fast-math: the pitch decides the tuning histogram bin.
    """
    ref = _PEAK_SHARE * peak
    mid = mag[k_lo:k_hi]
    left = mag[k_lo - 1:k_hi - 1]
    right = mag[k_lo + 1:k_hi + 1]
    for i in range(mid.shape[0]):
        is_peak[i] = (mid[i] > ref) & (mid[i] > left[i]) & (mid[i] >= right[i])
    for i in range(mid.shape[0]):
        if is_peak[i]:
            k = k_lo + i
            a = mag[k + 1] + mag[k - 1] - np.float32(2.0) * mag[k]
            b = (mag[k + 1] - mag[k - 1]) / np.float32(2.0)
            shift = np.float32(0.0) if abs(b) >= abs(a) else -b / a
            pitches[count] = np.float32((k + np.float64(shift)) * sr_over_nfft)
            mags[count] = mag[k] + np.float32(0.5) * b * shift
            count += 1
    return count


@njit(cache=True, fastmath=_FAST)
def spectrum_frames(spectra, freqs, mel_start, mel_stop, mel_offset, mel_weights, k_lo,
                    k_hi, sr_over_nfft, mag, melpow, frame_stats, pitches, pitch_mags, count):
    """Magnitude, mel power, centroid, bandwidth and pitch candidates of STFT frames.

    spectra : (n_frames, n_bins) complex64.  mag : (n_frames, n_bins) float32 out, |X|.
    melpow : (n_frames, n_mels) float32 out, Slaney mel bank @ |X|**2 (sparse rows).
    frame_stats : (n_frames, 2) float64 out: centroid Hz, bandwidth Hz.
    pitches, pitch_mags : float32 with room after the first ``count`` for the piptrack
        candidates of these frames (bins [k_lo, k_hi), ``k_lo >= 1``, ``k_hi < n_bins``):
        at most ``(k_hi - k_lo) // 2 + 1`` per frame, since no two neighbouring bins are
        both peaks. Returns the new count.
    librosa: ``stft``, ``melspectrogram``, ``spectral_centroid``, ``spectral_bandwidth``
    (an all-zero frame is left unnormalised there, so both are computed from raw sums),
    ``piptrack``.

    Frames go in blocks of :data:`MEL_BLOCK`: their power is stored bin-major, so each mel
    band is summed over its bins for the whole block at once (every frame's sum still
    runs over the bins in ascending order, as in the one-frame-at-a-time loop).
    """
    n_frames, n_bins = spectra.shape
    power_t = np.zeros((n_bins, MEL_BLOCK), np.float32)
    acc = np.zeros(MEL_BLOCK, np.float32)
    is_peak = np.empty(max(k_hi - k_lo, 0), np.bool_)
    peak_bits = np.empty(1, np.int32)
    peak = peak_bits.view(np.float32)  # the frame's max |X|
    for t0 in range(0, n_frames, MEL_BLOCK):
        width = min(MEL_BLOCK, n_frames - t0)
        for j in range(width):
            t = t0 + j
            m = mag[t]
            x = spectra[t]
            for k in range(n_bins):
                v = x[k]
                m[k] = np.sqrt(v.real * v.real + v.imag * v.imag)  # float32 sqrt: |X|
            total = 0.0
            weighted = 0.0
            weighted2 = 0.0
            for k in range(n_bins):
                a = np.float64(m[k])
                f = np.float64(freqs[k])
                total += a
                weighted += a * f
                weighted2 += a * f * f
            for k in range(n_bins):  # its own loop: a strided store stops SIMD above
                power_t[k, j] = m[k] * m[k]
            norm = total if total >= TINY32 else 1.0
            centroid = weighted / norm
            # sum m (f - c)^2 = sum m f^2 - 2 c sum m f + c^2 sum m, in float64
            spread = weighted2 - 2.0 * centroid * weighted + centroid * centroid * total
            frame_stats[t, 0] = centroid
            frame_stats[t, 1] = math.sqrt(max(spread, 0.0) / norm)
            peak_bits[0] = _int_max(m.view(np.int32))
            count = _pitch_candidates(m, peak[0], k_lo, k_hi, sr_over_nfft, is_peak, pitches,
                                      pitch_mags, count)
        for b in range(mel_start.shape[0]):
            acc[:] = 0.0
            w0 = mel_offset[b] - mel_start[b]
            for k in range(mel_start[b], mel_stop[b]):
                w = mel_weights[w0 + k]
                for j in range(MEL_BLOCK):
                    acc[j] += w * power_t[k, j]
            for j in range(width):
                melpow[t0 + j, b] = acc[j]
    return count


@njit(cache=True)
def _tuning_index(pitches, mags, count, edges, bins_per_octave):
    """``librosa.estimate_tuning(bins_per_octave=...)``: index into ``edges`` of the
    histogram mode of the pitch residuals (in fractions of a chroma bin) of candidates
    with at least median magnitude (0.0 when none)."""
    n_bins = edges.shape[0] - 1
    zero_index = n_bins // 2
    if count == 0:
        return zero_index
    threshold = np.median(mags[:count])
    hist = np.zeros(n_bins, np.int64)
    used = 0
    for i in range(count):
        if mags[i] >= threshold:
            j = tuning_bin(pitches[i], edges, bins_per_octave)
            if j < n_bins:
                hist[j] += 1
                used += 1
    if used == 0:
        return zero_index
    return int(np.argmax(hist))


@njit(cache=True, inline="always")
def tuning_bin(f, edges, bins_per_octave):
    """The ``estimate_tuning`` histogram bin (index into ``edges``) of a piptrack pitch
    ``f`` (float32 Hz): its residual in fractions of a chroma bin; ``len(edges) - 1`` when
    the pitch counts in no bin (``f <= 0``, or a residual outside the histogram)."""
    n_bins = edges.shape[0] - 1
    if not f > 0:
        return n_bins
    octs = np.log2(f / np.float32(OCTAVE_ZERO_HZ))  # librosa.hz_to_octs
    r = np.float32(np.float32(bins_per_octave) * octs) % np.float32(1.0)
    if r >= 0.5:
        r -= np.float32(1.0)
    x = np.float64(r)
    width = (edges[-1] - edges[0]) / n_bins
    j = int((x - edges[0]) / width)
    j = min(max(j, 0), n_bins - 1)
    if x < edges[j]:
        j -= 1
    elif j != n_bins - 1 and x >= edges[j + 1]:
        j += 1
    return j if 0 <= j < n_bins else n_bins


@njit(cache=True)
def clip_finish(y, n_fft, hop, mag, melpow, db, frame_stats, pitches, pitch_mags, count,
                tuning_edges, chroma_banks, dct, top_db, starts, out, logmel):
    """Reduce a clip's frames (from :func:`spectrum_frames`) to its row of features.

    y : (n,) float32, the clip.  mag, melpow, frame_stats : all frames of the clip.
    db : (n_frames, n_mels) float32, ``10 * log10(max(melpow, AMIN))``.
    pitches, pitch_mags, count : the clip's piptrack candidates.
    chroma_banks : (n_tunings, n_bins, n_chroma) float32, librosa's chroma bank for every
    ``tuning_edges`` value.  dct : (n_mels, n_mfcc) float32.
    starts : (8,) int64, the first column in ``out`` of zcr, chroma, mfcc, rms, mel,
    moments, centroid and bandwidth (``FeatureSpec.slices``).
    out : (spec.n_features,) float32 receives the row in store order.  logmel :
    (n_frames, n_mels) float32 receives the clamped dB frames, or has shape (0, n_mels) to
    skip them.

    Means over frames of ZCR, chroma (``chroma_stft``: tuning from ``estimate_tuning``,
    each frame divided by its largest |value|), MFCC (mean dB @ DCT; ``power_to_db``
    clamps dB at the clip's max - top_db), RMS, mel power; the waveform moments; centroid
    and bandwidth.
    """
    n_frames, n_mels = melpow.shape
    n_chroma = chroma_banks.shape[2]
    n_mfcc = dct.shape[1]
    timed = np.empty(6, np.float64)
    time_features(y, n_fft, hop, n_frames, timed)

    mel_sum = np.zeros(n_mels, np.float64)
    db_max = np.float32(-np.inf)
    for t in range(n_frames):
        for b in range(n_mels):
            mel_sum[b] += melpow[t, b]
            db_max = max(db_max, db[t, b])
    floor = db_max - np.float32(top_db)
    db_sum = np.zeros(n_mels, np.float64)
    keep_frames = logmel.shape[0] > 0
    for t in range(n_frames):
        for b in range(n_mels):
            d = max(db[t, b], floor)
            db_sum[b] += d
            if keep_frames:
                logmel[t, b] = d
    centroid = 0.0
    bandwidth = 0.0
    for t in range(n_frames):
        centroid += frame_stats[t, 0]
        bandwidth += frame_stats[t, 1]

    tuning = _tuning_index(pitches, pitch_mags, count, tuning_edges, n_chroma)
    raw = np.dot(mag, chroma_banks[tuning])  # (n_frames, n_chroma), BLAS
    chroma = np.zeros(n_chroma, np.float64)
    for t in range(n_frames):
        peak = np.float32(0.0)
        for c in range(n_chroma):
            peak = max(peak, abs(raw[t, c]))
        if peak < TINY32:  # librosa.util.normalize(norm=inf) leaves such frames alone
            peak = np.float32(1.0)
        for c in range(n_chroma):
            chroma[c] += raw[t, c] / peak

    out[starts[0]] = timed[0]
    for c in range(n_chroma):
        out[starts[1] + c] = chroma[c] / n_frames
    for j in range(n_mfcc):
        v = 0.0
        for b in range(n_mels):
            v += db_sum[b] / n_frames * np.float64(dct[b, j])
        out[starts[2] + j] = v
    out[starts[3]] = timed[1]
    for b in range(n_mels):
        out[starts[4] + b] = mel_sum[b] / n_frames
    for j in range(4):
        out[starts[5] + j] = timed[2 + j]
    out[starts[6]] = centroid / n_frames
    out[starts[7]] = bandwidth / n_frames
