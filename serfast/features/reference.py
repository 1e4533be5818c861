"""The librosa reference: the SER-FusionNet method's per-clip feature loop.

This is the numerical oracle for tests and the baseline for benchmarks; it is slow by
design (librosa recomputes the STFT for nearly every feature).
"""

from __future__ import annotations

import numpy as np

from .librosa_constants import (AMIN, PIPTRACK_THRESHOLD, PITCH_RANGE, TUNING_RESOLUTION,
                                ZCR_THRESHOLD)
from .spec import FeatureSpec

__all__ = ["reference_features", "reference_load"]


def reference_features(y: np.ndarray, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """The seed features of one clip exactly as the method computes them with librosa.

    y : (n,) float32 mono clip at ``spec.sr``.  Returns (spec.n_features,) float64
    in store column order (``spec.slices``, without gender).  librosa's constants are
    passed as ``librosa_constants`` states them (each is librosa's default), and the MFCCs
    clamp at ``spec.top_db``.
    """
    import librosa
    import scipy.stats

    sr = spec.sr
    kw = dict(n_fft=spec.n_fft, hop_length=spec.hop_length)
    S = np.abs(librosa.stft(y, **kw))
    tuning = librosa.estimate_tuning(S=S, sr=sr, resolution=TUNING_RESOLUTION,
                                     bins_per_octave=spec.n_chroma, fmin=PITCH_RANGE[0],
                                     fmax=PITCH_RANGE[1], threshold=PIPTRACK_THRESHOLD)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=spec.n_mels, **kw)
    log_mel = librosa.power_to_db(mel, amin=AMIN, top_db=spec.top_db)
    groups = {
        "zcr": librosa.feature.zero_crossing_rate(y=y, frame_length=spec.n_fft,
                                                  hop_length=spec.hop_length,
                                                  threshold=ZCR_THRESHOLD).mean(axis=1),
        "chroma": librosa.feature.chroma_stft(S=S, sr=sr, n_chroma=spec.n_chroma,
                                              tuning=tuning, **kw).mean(axis=1),
        "mfcc": librosa.feature.mfcc(S=log_mel, n_mfcc=spec.n_mfcc).mean(axis=1),
        "rms": librosa.feature.rms(y=y, frame_length=spec.n_fft,
                                   hop_length=spec.hop_length).mean(axis=1),
        "mel": mel.mean(axis=1),
        "moments": [y.mean(), y.var(), scipy.stats.skew(y), scipy.stats.kurtosis(y)],
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr, **kw).mean(),
        "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr, **kw).mean(),
    }
    out = np.empty(spec.n_features, np.float64)
    for name, value in groups.items():
        out[spec.slices[name]] = np.asarray(value, np.float64).ravel()
    return out


def reference_load(path, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """``librosa.load`` with the spec's rate, offset and duration (0 = whole file)."""
    import librosa

    y, _ = librosa.load(path, sr=spec.sr, offset=spec.offset,
                        duration=spec.duration or None)
    return y
