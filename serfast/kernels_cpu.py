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
def frame_batch(signal, sig_offsets, first_frame, frame_offsets, window, hop, out):
    """Cut centred, zero-padded, windowed STFT frames of pieces of clips.

    signal : (n_samples,) float32, the clips end to end.
    sig_offsets : (n_pieces + 1,) int64 per piece: its clip is ``signal[sig_offsets[i]:``
        ``sig_offsets[i+1]]`` (consecutive pieces of one clip repeat the same bounds).
    first_frame : (n_pieces,) int64, the clip frame each piece starts at.
    frame_offsets : (n_pieces + 1,) int64, piece ``i`` fills ``out[frame_offsets[i]:...]``.
    window : (n_fft,) float32.  out : (n_frames, n_fft) float32, filled in place.
    """
    n_fft = window.shape[0]
    half = n_fft // 2
    for c in range(first_frame.shape[0]):
        a = sig_offsets[c]
        n = sig_offsets[c + 1] - a
        for t in range(frame_offsets[c + 1] - frame_offsets[c]):
            row = out[frame_offsets[c] + t]
            start = (first_frame[c] + t) * hop - half
            for j in range(n_fft):
                k = start + j
                row[j] = signal[a + k] * window[j] if 0 <= k < n else np.float32(0.0)


@njit(cache=True, inline="always")
def _crossing(y, i):
    """1 if ``y[i - 1]`` and ``y[i]`` lie on different sides of zero (librosa's ZCR:
    |x| <= 1e-10 counts as non-negative), else 0."""
    return int((y[i] < -1e-10) != (y[i - 1] < -1e-10))


@njit(cache=True, fastmath=_FAST)
def time_features(y, n_fft, hop, out):
    """ZCR mean, RMS mean and the four waveform moments of one clip.

    y : (n,) float32, n >= 1.  out : (6,) float64 receives
    ``zcr_mean, rms_mean, mean, var, skew, kurtosis`` (Fisher kurtosis, biased moments as
    ``scipy.stats``; skew and kurtosis are 0 for a constant signal).

    ZCR: ``librosa.feature.zero_crossing_rate`` (edge padding, |x| <= 1e-10 counts as 0,
    first sample of each frame never a crossing). RMS: ``librosa.feature.rms`` (zero
    padding). Edge padding repeats the end samples, so crossings only occur inside ``y``.
    """
    n = y.shape[0]
    half = n_fft // 2
    n_frames = 1 + n // hop
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
        e = 0.0
        c = 0
        for i in range(a, b):
            v = y[i]
            e += np.float64(v) * v
            total += v
            if i > 0:
                c += _crossing(y, i)
        block_energy[blk] = e
        block_cross[blk] = c
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
                c -= _crossing(y, p0)
        else:
            e = 0.0
            c = 0
            for i in range(max(p0, 0), min(p0 + n_fft, n)):
                e += np.float64(y[i]) * y[i]
                if i > max(p0, 0):
                    c += _crossing(y, i)
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
    if m2 > 1e-30:
        out[4] = m3 / m2 ** 1.5
        out[5] = m4 / (m2 * m2) - 3.0
    else:
        out[4] = 0.0
        out[5] = 0.0


#: Frames whose mel bands :func:`spectrum_frames` sums together (one SIMD register of
#: float32 accumulators per band and bin, instead of one latency-bound chain per frame).
MEL_BLOCK = 8


@njit(cache=True, fastmath=_FAST)
def spectrum_frames(spectra, freqs, mel_start, mel_stop, mel_offset, mel_weights,
                    mag, melpow, frame_stats):
    """Magnitude, mel power, centroid, bandwidth and peak of every STFT frame.

    spectra : (n_frames, n_bins) complex64.  mag : (n_frames, n_bins) float32 out, |X|.
    melpow : (n_frames, n_mels) float32 out, Slaney mel bank @ |X|**2 (sparse rows).
    frame_stats : (n_frames, 3) float64 out: centroid Hz, bandwidth Hz, max |X|.
    librosa: ``stft``, ``melspectrogram``, ``spectral_centroid``, ``spectral_bandwidth``
    (an all-zero frame is left unnormalised there, so both are computed from raw sums).

    Frames go in blocks of :data:`MEL_BLOCK`: their power is stored bin-major, so each mel
    band is summed over its bins for the whole block at once (every frame's sum still
    runs over the bins in ascending order, as in the one-frame-at-a-time loop).
    """
    n_frames, n_bins = spectra.shape
    power_t = np.zeros((n_bins, MEL_BLOCK), np.float32)
    acc = np.zeros(MEL_BLOCK, np.float32)
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
            peak = np.float32(0.0)
            for k in range(n_bins):
                a = m[k]
                total += a
                weighted += a * freqs[k]
                peak = max(peak, a)
                power_t[k, j] = a * a
            norm = total if total >= _TINY32 else 1.0
            centroid = weighted / norm
            spread = 0.0
            for k in range(n_bins):
                d = freqs[k] - centroid
                spread += m[k] * d * d
            frame_stats[t, 0] = centroid
            frame_stats[t, 1] = math.sqrt(spread / norm)
            frame_stats[t, 2] = peak
        for b in range(mel_start.shape[0]):
            acc[:] = 0.0
            w0 = mel_offset[b] - mel_start[b]
            for k in range(mel_start[b], mel_stop[b]):
                w = mel_weights[w0 + k]
                for j in range(MEL_BLOCK):
                    acc[j] += w * power_t[k, j]
            for j in range(width):
                melpow[t0 + j, b] = acc[j]


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


@njit(cache=True)
def clip_reduce(mag, melpow, db, frame_stats, frame_offsets, k_lo, k_hi, sr_over_nfft,
                tuning_edges, top_db, out, tunings, logmel_out):
    """Per-clip means and chroma tuning from the per-frame arrays of ``spectrum_frames``.

    db : (n_frames, n_mels) float32, ``10 * log10(max(melpow, 1e-10))``.
    out : (n_clips, 2 * n_mels + 2) float64 receives per clip the means of
        ``mel power, centroid, bandwidth, clamped dB`` (``power_to_db(top_db)``: the clamp
        is ``max(db, clip max - top_db)``).
    tunings : (n_clips,) int64 receives the ``tuning_edges`` index from ``estimate_tuning``.
    logmel_out : (n_frames, n_mels) float32 receives clamped dB; shape (0, n_mels) skips.
    """
    n_mels = melpow.shape[1]
    n_clips = frame_offsets.shape[0] - 1
    max_t = 0
    for c in range(n_clips):
        max_t = max(max_t, frame_offsets[c + 1] - frame_offsets[c])
    per_frame = max(k_hi - k_lo, 1)
    pitches = np.empty(max_t * per_frame, np.float32)
    pmags = np.empty(max_t * per_frame, np.float32)
    keep_frames = logmel_out.shape[0] > 0
    for c in range(n_clips):
        f0 = frame_offsets[c]
        f1 = frame_offsets[c + 1]
        row = out[c]
        row[:] = 0.0
        count = 0
        db_max = np.float32(-np.inf)
        for t in range(f0, f1):
            count = _pitch_candidates(mag[t], np.float32(frame_stats[t, 2]), k_lo, k_hi,
                                      sr_over_nfft, pitches, pmags, count)
            row[n_mels] += frame_stats[t, 0]
            row[n_mels + 1] += frame_stats[t, 1]
            for b in range(n_mels):
                row[b] += melpow[t, b]
                db_max = max(db_max, db[t, b])
        floor = db_max - np.float32(top_db)
        for t in range(f0, f1):
            for b in range(n_mels):
                d = max(db[t, b], floor)
                row[n_mels + 2 + b] += d
                if keep_frames:
                    logmel_out[t, b] = d
        row[:] /= f1 - f0
        tunings[c] = _tuning_index(pitches, pmags, count, tuning_edges)
