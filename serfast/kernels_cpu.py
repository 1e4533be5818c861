"""Numba kernels of the CPU backend: the fused feature computation.

One STFT per clip feeds every spectral feature; the time-domain features read the signal
once. Kernels work on a batch of clips laid end to end (``offsets`` mark where each clip
starts) so one call covers thousands of frames. All kernels are compiled with
``cache=True`` so only the first run on a machine pays for compilation.

The arithmetic follows librosa 0.11 step by step (see ``serfast.features`` for the
reference definition); comments name the librosa function each block reproduces.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
#: Smallest positive normal float32: librosa's ``util.tiny`` threshold in ``normalize``.
_TINY32 = np.float32(np.finfo(np.float32).tiny)


@njit(cache=True)
def frame_batch(signal, sig_offsets, frame_offsets, window, hop, out):
    """Cut centred, zero-padded, windowed STFT frames of every clip.

    signal : (n_samples,) float32, the clips end to end.
    sig_offsets : (n_clips + 1,) int64, clip ``i`` is ``signal[sig_offsets[i]:sig_offsets[i+1]]``.
    frame_offsets : (n_clips + 1,) int64, its frames go to ``out[frame_offsets[i]:...]``.
    window : (n_fft,) float32.  out : (n_frames, n_fft) float32, filled in place.
    """
    n_fft = window.shape[0]
    half = n_fft // 2
    for c in range(sig_offsets.shape[0] - 1):
        a = sig_offsets[c]
        n = sig_offsets[c + 1] - a
        for t in range(frame_offsets[c + 1] - frame_offsets[c]):
            row = out[frame_offsets[c] + t]
            start = t * hop - half
            for j in range(n_fft):
                k = start + j
                row[j] = signal[a + k] * window[j] if 0 <= k < n else np.float32(0.0)


@njit(cache=True)
def time_features(y, n_fft, hop, out):
    """ZCR mean, RMS mean and the four waveform moments of one clip.

    y : (n,) float32, n >= 1.  out : (6,) float64 receives
    ``zcr_mean, rms_mean, mean, var, skew, kurtosis`` (Fisher kurtosis, biased moments as
    ``scipy.stats``; skew and kurtosis are 0 for a constant signal).

    ZCR: ``librosa.feature.zero_crossing_rate`` (edge padding, threshold 1e-10, first
    sample of each frame never a crossing). RMS: ``librosa.feature.rms`` (zero padding).
    """
    n = y.shape[0]
    half = n_fft // 2
    n_frames = 1 + n // hop
    # padded signal index p maps to y[clip(p - half, 0, n - 1)] for ZCR (edge mode)
    m = n + 2 * half
    cross = np.zeros(m + 1, np.int64)  # cross[p + 1] = cumulative crossings up to p
    prev_neg = False
    for p in range(m):
        q = min(max(p - half, 0), n - 1)
        v = y[q]
        neg = (v < 0.0) and (abs(v) > 1e-10)
        cross[p + 1] = cross[p] + (1 if (p > 0 and neg != prev_neg) else 0)
        prev_neg = neg
    sq = np.zeros(n + 1, np.float64)
    s1 = 0.0
    for i in range(n):
        s1 += y[i]
        sq[i + 1] = sq[i] + np.float64(y[i]) * y[i]
    zcr = 0.0
    rms = 0.0
    for t in range(n_frames):
        p0 = t * hop
        # crossings strictly inside the frame: positions p0+1 .. p0+n_fft-1
        zcr += (cross[p0 + n_fft] - cross[p0 + 1]) / n_fft
        lo = min(max(p0 - half, 0), n)
        hi = min(max(p0 - half + n_fft, 0), n)
        rms += math.sqrt(max(sq[hi] - sq[lo], 0.0) / n_fft)
    mean = s1 / n
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
    out[0] = zcr / n_frames
    out[1] = rms / n_frames
    out[2] = mean
    out[3] = m2
    if m2 > 1e-30:
        out[4] = m3 / m2 ** 1.5
        out[5] = m4 / (m2 * m2) - 3.0
    else:
        out[4] = 0.0
        out[5] = 0.0


@njit(cache=True, fastmath=_FAST)
def _frame_spectrum(xf, freqs, mel_start, mel_stop, mel_offset, mel_weights,
                    mag, melpow):
    """|X| of one frame into ``mag``, its mel power into ``melpow``; returns
    (centroid Hz, bandwidth Hz, max |X|).  librosa: ``stft``, ``melspectrogram``,
    ``spectral_centroid``, ``spectral_bandwidth``."""
    n_bins = mag.shape[0]
    total = 0.0
    weighted = 0.0
    peak = np.float32(0.0)
    for k in range(n_bins):
        v = xf[k]
        a = np.float32(math.sqrt(v.real * v.real + v.imag * v.imag))
        mag[k] = a
        total += a
        weighted += a * freqs[k]
        peak = max(peak, a)
    for b in range(mel_start.shape[0]):
        acc = np.float32(0.0)
        w0 = mel_offset[b] - mel_start[b]
        for k in range(mel_start[b], mel_stop[b]):
            acc += mel_weights[w0 + k] * (mag[k] * mag[k])
        melpow[b] = acc
    if total >= _TINY32:
        centroid = weighted / total
        spread = 0.0
        for k in range(n_bins):
            d = freqs[k] - centroid
            spread += mag[k] * d * d
        bandwidth = math.sqrt(spread / total)
    else:  # librosa leaves an all-zero frame unnormalised: both sums are 0
        centroid = weighted
        spread = 0.0
        for k in range(n_bins):
            d = freqs[k] - centroid
            spread += mag[k] * d * d
        bandwidth = math.sqrt(spread)
    return centroid, bandwidth, peak


@njit(cache=True)
def _pitch_candidates(mag, peak, k_lo, k_hi, sr_over_nfft, pitches, mags, count):
    """``librosa.piptrack`` on one frame: append (pitch Hz, magnitude) of every local
    peak above 0.1 * frame max within bins [k_lo, k_hi); returns the new count."""
    ref = np.float32(0.1) * peak
    n_bins = mag.shape[0]
    for k in range(max(k_lo, 1), min(k_hi, n_bins - 1)):
        x0 = mag[k] if mag[k] > ref else np.float32(0.0)
        xm = mag[k - 1] if mag[k - 1] > ref else np.float32(0.0)
        xp = mag[k + 1] if mag[k + 1] > ref else np.float32(0.0)
        if x0 > xm and x0 >= xp:
            a = mag[k + 1] + mag[k - 1] - np.float32(2.0) * mag[k]
            b = (mag[k + 1] - mag[k - 1]) / np.float32(2.0)
            shift = np.float32(0.0) if abs(b) >= abs(a) else -b / a
            avg = (mag[k + 1] - mag[k - 1]) / np.float32(2.0)
            pitches[count] = np.float32((k + np.float64(shift)) * sr_over_nfft)
            mags[count] = mag[k] + np.float32(0.5) * avg * shift
            count += 1
    return count


@njit(cache=True)
def _tuning_index(pitches, mags, count, edges):
    """``librosa.estimate_tuning``: index into ``edges`` of the histogram mode of the
    pitch residuals of candidates with at least median magnitude (0.0 when none)."""
    n_bins = edges.shape[0] - 1
    zero_index = n_bins // 2
    if count == 0:
        return zero_index
    threshold = np.median(mags[:count])
    hist = np.zeros(n_bins, np.int64)
    a440_16 = np.float32(440.0 / 16.0)
    width = (edges[-1] - edges[0]) / n_bins
    used = 0
    for i in range(count):
        f = pitches[i]
        if mags[i] >= threshold and f > 0:
            r = np.float32(np.float32(12.0) * np.log2(f / a440_16)) % np.float32(1.0)
            if r >= 0.5:
                r -= np.float32(1.0)
            x = np.float64(r)
            j = int((x - edges[0]) / width)
            j = min(max(j, 0), n_bins - 1)
            if x < edges[j]:
                j -= 1
            elif j != n_bins - 1 and x >= edges[j + 1]:
                j += 1
            if 0 <= j < n_bins:
                hist[j] += 1
                used += 1
    if used == 0:
        return zero_index
    return int(np.argmax(hist))


@njit(cache=True, fastmath=_FAST)
def spectral_batch(spectra, frame_offsets, freqs, mel_start, mel_stop, mel_offset,
                   mel_weights, chroma_table, tuning_edges, k_lo, k_hi, sr_over_nfft,
                   top_db, out, logmel_out):
    """Spectral features of every clip from its one-sided STFT.

    spectra : (n_frames, n_bins) complex64, frames of all clips (``frame_offsets``).
    chroma_table : (n_tunings, n_chroma, n_bins) float32, see ``FilterBanks.chroma``.
    out : (n_clips, n_chroma + n_mels + 2 + n_mels) float64 receives per clip
        ``chroma means, mel power means, centroid mean, bandwidth mean, log-mel dB means``.
    logmel_out : (n_frames, n_mels) float32 receives the dB mel of every frame
        (``power_to_db(ref=1, amin=1e-10, top_db)``); pass shape (0, n_mels) to skip.
    """
    n_bins = spectra.shape[1]
    n_mels = mel_start.shape[0]
    n_chroma = chroma_table.shape[1]
    n_clips = frame_offsets.shape[0] - 1
    max_t = 0
    for c in range(n_clips):
        max_t = max(max_t, frame_offsets[c + 1] - frame_offsets[c])
    mag = np.empty((max_t, n_bins), np.float32)
    db = np.empty((max_t, n_mels), np.float32)
    per_frame = max(k_hi - k_lo, 1)
    pitches = np.empty(max_t * per_frame, np.float32)
    pmags = np.empty(max_t * per_frame, np.float32)
    melpow = np.empty(n_mels, np.float32)
    raw = np.empty(n_chroma, np.float32)
    keep_frames = logmel_out.shape[0] > 0
    for c in range(n_clips):
        f0 = frame_offsets[c]
        n_t = frame_offsets[c + 1] - f0
        row = out[c]
        row[:] = 0.0
        count = 0
        db_max = np.float32(-np.inf)
        cen_sum = 0.0
        bw_sum = 0.0
        for t in range(n_t):
            cen, bw, peak = _frame_spectrum(spectra[f0 + t], freqs, mel_start, mel_stop,
                                            mel_offset, mel_weights, mag[t], melpow)
            cen_sum += cen
            bw_sum += bw
            count = _pitch_candidates(mag[t], peak, k_lo, k_hi, sr_over_nfft,
                                      pitches, pmags, count)
            for b in range(n_mels):
                row[n_chroma + b] += melpow[b]
                d = np.float32(10.0) * np.float32(math.log10(max(np.float32(1e-10), melpow[b])))
                db[t, b] = d
                db_max = max(db_max, d)
        floor = db_max - np.float32(top_db)
        for t in range(n_t):
            for b in range(n_mels):
                d = max(db[t, b], floor)
                row[n_chroma + n_mels + 2 + b] += d
                if keep_frames:
                    logmel_out[f0 + t, b] = d
        fb = chroma_table[_tuning_index(pitches, pmags, count, tuning_edges)]
        for t in range(n_t):
            peak = np.float32(0.0)
            for q in range(n_chroma):
                acc = np.float32(0.0)
                for k in range(n_bins):
                    acc += fb[q, k] * mag[t, k]
                raw[q] = acc
                peak = max(peak, abs(acc))
            if peak < _TINY32:
                peak = np.float32(1.0)
            for q in range(n_chroma):
                row[q] += raw[q] / peak
        row[n_chroma + n_mels] = cen_sum
        row[n_chroma + n_mels + 1] = bw_sum
        row[:] /= n_t
