"""Spectral shape, loudness dynamics and frame statistics of the prosody sets, for every
backend.

Written against an array module ``xp`` (NumPy on the CPU, CuPy on a GPU) over a batch of
clips that share one frame grid: the CPU backend passes one clip, the GPU backend a
bucket. Inputs are what the seed kernels already computed from the clip's single STFT
(n_fft 2048, hop 512): ``mag`` |X| (B, T, n_bins) float32, ``logmel`` the clamped dB mel
power (B, T, n_mels) float32 (``power_to_db(melspectrogram(y))``), and the frame RMS
(B, T) float64 (``librosa.feature.rms(y)``). Reference definitions (librosa 0.11, per
clip; every frame statistic over the T frames of the seed's grid)::

    contrast = spectral_contrast(S=mag, sr=sr)         (7 bands: 0-200 Hz, then octaves
                                                        from 200 Hz, the last to Nyquist)
    flatness = spectral_flatness(S=mag)
    rolloff  = spectral_rolloff(S=mag, sr=sr)           (roll_percent 0.85, Hz)
    onset    = onset.onset_strength(y=y, sr=sr)
    rms_db   = amplitude_to_db(feature.rms(y=y))        (top_db 80 below the clip's max)
    mfcc     = logmel @ dct                             (= feature.mfcc(y=y, sr=sr))

Per clip, for each of ``SHAPE_TRACKS`` and each MFCC: mean (shape tracks only; the MFCC
means are seed columns), population standard deviation, and the mean absolute first
delta, ``mean(|librosa.feature.delta(track, width=9)|)`` (the mean of the signed delta
is near 0 for any clip, its magnitude measures how fast the track moves). A clip of fewer
than 9 frames, where librosa's delta is undefined, uses the slope of one least-squares
line through all its frames (0 for one frame).

Loudness dynamics of ``rms_db``: mean, standard deviation, 20-80 percentile range (linear
interpolation), and rise and fall slopes: the contour smoothed by a centred 5-frame
(116 ms) moving average (valid part only), its frame-to-frame differences in dB/s
(``* sr / hop``), and the mean of the positive ones (rise, >= 0) and of the negative ones
(fall, <= 0); 0 when there is none.

Pitch and voice quality (``serfast.features.pitch``, ``serfast.features.voice``) run on
the host for every backend, from one pYIN/YIN pass per clip (:func:`pitch_voice`); their
hop-256 frames map onto the seed's hop-512 grid by centre: seed frame ``t`` (centred on
sample ``t * 512``) takes pYIN frame ``2 t``, centred on the same sample.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .librosa_constants import AMIN
from .spec import FeatureSpec, n_frames

__all__ = ["CONTRAST_BANDS", "CONTRAST_FMIN", "DELTA_WIDTH", "FRAME_SHAPE_COLUMNS",
           "LOUDNESS_SMOOTH", "ROLL_PERCENT", "contrast_bands", "delta", "frame_rms",
           "frame_shape", "loudness_db", "loudness_stats", "pitch_frame_index", "pitch_voice",
           "pitch_voice_tracks", "shape_tracks", "spectral_values", "track_stats",
           "tracks_from_frames"]

#: ``spectral_contrast(n_bands=6, fmin=200.0, quantile=0.02)``: 7 rows.
CONTRAST_BANDS, CONTRAST_FMIN, CONTRAST_QUANTILE = 6, 200.0, 0.02
#: ``spectral_rolloff(roll_percent=0.85)``.
ROLL_PERCENT = 0.85
#: ``feature.delta(width=9)``.
DELTA_WIDTH = 9
#: Frames of the moving average behind the loudness slopes.
LOUDNESS_SMOOTH = 5
#: ``power_to_db(top_db=80.0)``, the default of every dB conversion here.
_TOP_DB = 80.0


@cache
def contrast_bands(spec: FeatureSpec) -> tuple[tuple[int, int, int], ...]:
    """``spectral_contrast``'s sub-bands: (first bin, end bin, quantile count) per band,
    contiguous bin ranges of the one-sided spectrum."""
    freq = np.fft.rfftfreq(spec.n_fft, 1.0 / spec.sr)
    octa = np.zeros(CONTRAST_BANDS + 2)
    octa[1:] = CONTRAST_FMIN * 2.0 ** np.arange(CONTRAST_BANDS + 1)
    if np.any(octa[:-1] >= 0.5 * spec.sr):
        raise ValueError(f"spectral contrast needs a sample rate above {2 * octa[-2]:g} Hz")
    out = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        idx = np.flatnonzero((freq >= f_low) & (freq <= f_high))
        lo = idx[0] - 1 if k > 0 else idx[0]
        hi = len(freq) if k == CONTRAST_BANDS else idx[-1] + 1
        count = max(int(np.rint(CONTRAST_QUANTILE * (hi - lo))), 1)
        out.append((int(lo), int(hi - 1 if k < CONTRAST_BANDS else hi), count))
    return tuple(out)


def _power_db(x, xp):
    """``power_to_db(x)`` per clip of (B, ...): 10 log10(max(x, AMIN)), clamped at the
    clip's max - 80 dB."""
    db = 10.0 * xp.log10(xp.maximum(x, AMIN))
    axes = tuple(range(1, db.ndim))
    return xp.maximum(db, db.max(axis=axes, keepdims=True) - _TOP_DB)


#: Columns of :func:`frame_shape`: each contrast band's peak and valley, flatness, roll-off.
FRAME_SHAPE_COLUMNS = 2 * (CONTRAST_BANDS + 1) + 2


def frame_shape(mag, spec: FeatureSpec, xp):
    """What the shape tracks take from each frame alone: (B, T, FRAME_SHAPE_COLUMNS)
    float64 of ``mag`` (B, T, n_bins) float32 |X|: the mean magnitude of each contrast
    band's top and bottom quantile (7 + 7), flatness, roll-off (Hz). A frame's values do
    not depend on the clip around it (:func:`tracks_from_frames` adds what does). On the
    CPU the contrast quantiles and the roll-off come from Numba kernels
    (``shape_kernels.band_extremes``, ``rolloff_bins``); other array modules partition."""
    n_clips, t, n_bins = mag.shape
    bands = contrast_bands(spec)
    out = xp.empty((n_clips, t, FRAME_SHAPE_COLUMNS), xp.float64)
    n = len(bands)
    if xp is np:  # Numba kernels, loaded where the CPU needs them
        from .shape_kernels import band_extremes, rolloff_bins

        rows = mag.reshape(n_clips * t, n_bins)
        lo, hi, count = (np.array(c, np.int64) for c in zip(*bands))
        extremes = np.empty((n_clips * t, 2 * n))
        band_extremes(rows, lo, hi, count, extremes)
        out[..., :2 * n] = extremes.reshape(n_clips, t, 2 * n)
        rolloff = np.empty(n_clips * t, np.int64)
        rolloff_bins(rows, np.float32(ROLL_PERCENT), rolloff)
        rolloff = rolloff.reshape(n_clips, t)
    else:
        for k, (lo, hi, count) in enumerate(bands):
            width = hi - lo
            ranked = xp.partition(mag[..., lo:hi], (count - 1, width - count), axis=2)
            out[..., k] = ranked[..., width - count:].mean(axis=2)
            out[..., n + k] = ranked[..., :count].mean(axis=2)
        energy = xp.cumsum(mag, axis=2)
        below = (energy < xp.float32(ROLL_PERCENT) * energy[..., -1:]).sum(axis=2)
        rolloff = xp.minimum(below, n_bins - 1)

    power = xp.maximum(mag * mag, xp.float32(AMIN))
    out[..., -2] = (xp.exp(xp.log(power).mean(axis=2, dtype=xp.float64))
                    / power.mean(axis=2, dtype=xp.float64))
    out[..., -1] = xp.asarray(np.fft.rfftfreq(spec.n_fft, 1.0 / spec.sr))[rolloff]
    return out


def tracks_from_frames(framed, logmel, spec: FeatureSpec, xp):
    """Per-frame shape tracks (B, T, len(SHAPE_TRACKS)) float64 of a clip: contrast of 7
    bands (dB, clamped at the clip's max - 80 dB), flatness, roll-off (Hz), onset strength
    (dB), from :func:`frame_shape`'s ``framed`` and ``logmel`` (B, T, n_mels) float32."""
    n_clips, t = framed.shape[:2]
    n = CONTRAST_BANDS + 1
    contrast = _power_db(framed[..., :n], xp) - _power_db(framed[..., n:2 * n], xp)
    onset = xp.zeros((n_clips, t), xp.float64)
    lead = 1 + spec.n_fft // (2 * spec.hop_length)  # librosa's lag + centring shift
    if t > lead:
        rise = xp.maximum(logmel[:, 1:t - lead + 1] - logmel[:, :t - lead], 0)
        onset[:, lead:] = rise.mean(axis=2, dtype=xp.float64)
    return xp.concatenate([contrast, framed[..., 2 * n:], onset[..., None]], axis=2)


def shape_tracks(mag, logmel, spec: FeatureSpec, xp):
    """Per-frame shape tracks (B, T, len(SHAPE_TRACKS)) float64: contrast of 7 bands (dB),
    flatness, roll-off (Hz), onset strength (dB), from ``mag`` (B, T, n_bins) float32 and
    ``logmel`` (B, T, n_mels) float32 (module docstring)."""
    return tracks_from_frames(frame_shape(mag, spec, xp), logmel, spec, xp)


def delta(x, xp):
    """``librosa.feature.delta(x, width=9, axis=1)`` of (B, T, C): (B, T, C) float64.

    Savitzky-Golay of order 1 (the least-squares slope of each 9-frame window), its
    ``interp`` edges the slope of the first and last window; fewer than 9 frames: the
    slope of one line through all frames."""
    x = x.astype(xp.float64)
    t = x.shape[1]
    if t < 2:
        return xp.zeros_like(x)
    if t < DELTA_WIDTH:
        k = xp.asarray(np.arange(t) - (t - 1) / 2.0)
        slope = (x * k[None, :, None]).sum(axis=1, keepdims=True) / float((k * k).sum())
        return xp.broadcast_to(slope, x.shape).copy()
    half = DELTA_WIDTH // 2
    inner = sum(k * x[:, half + k:t - half + k] for k in range(-half, half + 1) if k)
    inner = inner / float(sum(k * k for k in range(-half, half + 1)))
    return xp.concatenate([xp.repeat(inner[:, :1], half, axis=1), inner,
                           xp.repeat(inner[:, -1:], half, axis=1)], axis=1)


def track_stats(x, xp, with_mean: bool = True):
    """(B, T, C) tracks to per-clip statistics: [mean,] std and mean |delta|, each
    (B, C) float64, concatenated along axis 1 in that order."""
    x = x.astype(xp.float64)
    parts = [x.mean(axis=1)] if with_mean else []
    parts += [x.std(axis=1), xp.abs(delta(x, xp)).mean(axis=1)]
    return xp.concatenate(parts, axis=1)


def frame_rms(y, lengths, t: int, spec: FeatureSpec, xp):
    """``librosa.feature.rms(y=y)`` of every frame: (B, t) float64, from a float64 prefix
    sum of energy. y : (B, n) float32, clip ``i`` zero past ``lengths[i]``."""
    energy = xp.zeros((y.shape[0], y.shape[1] + 1), xp.float64)
    xp.cumsum(y.astype(xp.float64) ** 2, axis=1, out=energy[:, 1:])
    start = xp.arange(t)[None, :] * spec.hop_length - spec.n_fft // 2
    n = xp.asarray(lengths)[:, None]
    lo = xp.minimum(xp.maximum(start, 0), n)
    hi = xp.minimum(xp.maximum(start + spec.n_fft, 0), n)
    take = xp.take_along_axis
    return xp.sqrt(xp.maximum(take(energy, hi, axis=1) - take(energy, lo, axis=1), 0.0)
                   / spec.n_fft)


def loudness_db(rms, xp):
    """``amplitude_to_db(rms)`` per clip: (B, T) float64 dB (amin 1e-5, top_db 80)."""
    return _power_db(rms * rms, xp)


def loudness_stats(db, spec: FeatureSpec, xp):
    """The loudness columns of (B, T) frame dB: (B, 5) float64 (module docstring)."""
    low, high = xp.percentile(db, xp.asarray([20.0, 80.0]), axis=1)
    out = [db.mean(axis=1), db.std(axis=1), high - low]
    t = db.shape[1]
    if t > LOUDNESS_SMOOTH:
        smooth = sum(db[:, i:t - LOUDNESS_SMOOTH + 1 + i] for i in range(LOUDNESS_SMOOTH))
        slope = xp.diff(smooth / LOUDNESS_SMOOTH, axis=1) * (spec.sr / spec.hop_length)
        for sign in (slope > 0, slope < 0):
            count = sign.sum(axis=1)
            out.append(xp.where(sign, slope, 0.0).sum(axis=1) / xp.maximum(count, 1))
    else:
        out += [xp.zeros(db.shape[0]), xp.zeros(db.shape[0])]
    return xp.stack(out, axis=1)


def spectral_values(framed, logmel, rms, dct, spec: FeatureSpec, xp):
    """The prosody columns computed from the STFT and the frame RMS, groups ``loudness``
    to ``mfcc_delta`` of ``spec.slices`` in store order: (B, 75) float64 by default.

    framed (B, T, FRAME_SHAPE_COLUMNS) float64 (:func:`frame_shape` of |X|), logmel
    (B, T, n_mels) float32 clamped dB, rms (B, T) float64, dct (n_mels, n_mfcc) float32.
    Also returns the frame dB (B, T) float64."""
    db = loudness_db(rms, xp)
    mfcc = logmel @ dct
    return xp.concatenate([loudness_stats(db, spec, xp),
                           track_stats(tracks_from_frames(framed, logmel, spec, xp), xp),
                           track_stats(mfcc, xp, with_mean=False)], axis=1), db


def pitch_frame_index(t: int, spec: FeatureSpec) -> np.ndarray:
    """(t,) int64: the pYIN frame (hop ``pitch.HOP_LENGTH``) centred nearest to each of
    the spec's frames (``2 t`` for hop 512)."""
    from .pitch import HOP_LENGTH

    return (np.arange(t) * spec.hop_length + HOP_LENGTH // 2) // HOP_LENGTH


def pitch_voice(y: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Groups ``pitch`` and ``voice`` of one clip ((13,) float32, finite) and its F0 (Hz,
    0 where unvoiced) and voicing probability on the spec's frame grid ((T, 2) float32,
    T = ``n_frames(len(y), spec)``). y : (n,) float32, n >= 1, at ``spec.sr``."""
    from .pitch import pitch_tracks  # SciPy and Numba: only with prosody

    return pitch_voice_tracks(y, spec, pitch_tracks(y, spec.sr))


def pitch_voice_tracks(y: np.ndarray, spec: FeatureSpec, tracks,
                       pulse_track=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pitch_voice` of a clip whose pYIN and YIN tracks are known: ``tracks`` is
    ``pitch.pitch_tracks(y, spec.sr)``'s ``(f0, voiced_flag, voiced_prob, yin_f0)``, and
    ``pulse_track``, where known, ``praat_voicing.praat_voicing``'s ``(f0, voiced)``."""
    from .pitch import pitch_stats
    from .voice import voice_stats

    f0, voiced, prob, yin_f0 = tracks
    row = np.concatenate([pitch_stats(f0, voiced, prob, spec.sr),
                          voice_stats(y, spec.sr, f0, voiced, yin_f0, pulse_track)])
    at = pitch_frame_index(n_frames(len(y), spec), spec)
    frames = np.stack([np.where(voiced, f0, 0.0)[at], prob[at]], axis=1)
    return row, frames.astype(np.float32)
