"""The librosa reference: the SER-FusionNet method's per-clip feature loop.

This is the numerical oracle for tests and the baseline for benchmarks; it is slow by
design (librosa recomputes the STFT for nearly every feature).
"""

from __future__ import annotations

import numpy as np

from .spec import FeatureSpec


def reference_features(y: np.ndarray, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """The seed features of one clip exactly as the method computes them with librosa.

    y : (n,) float32 mono clip at ``spec.sr``.  Returns (spec.n_features,) float64
    in store column order (without gender).
    """
    import librosa
    import scipy.stats

    sr = spec.sr
    kw = dict(n_fft=spec.n_fft, hop_length=spec.hop_length)
    S = np.abs(librosa.stft(y, **kw))
    parts = [
        librosa.feature.zero_crossing_rate(y=y, frame_length=spec.n_fft,
                                           hop_length=spec.hop_length).mean(axis=1),
        librosa.feature.chroma_stft(S=S, sr=sr, n_chroma=spec.n_chroma, **kw).mean(axis=1),
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=spec.n_mfcc, n_mels=spec.n_mels,
                             **kw).mean(axis=1),
        librosa.feature.rms(y=y, frame_length=spec.n_fft,
                            hop_length=spec.hop_length).mean(axis=1),
        librosa.feature.melspectrogram(y=y, sr=sr, n_mels=spec.n_mels, **kw).mean(axis=1),
        [y.mean(), y.var(), scipy.stats.skew(y), scipy.stats.kurtosis(y),
         librosa.feature.spectral_centroid(y=y, sr=sr, **kw).mean(),
         librosa.feature.spectral_bandwidth(y=y, sr=sr, **kw).mean()],
    ]
    return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])


def reference_load(path, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """``librosa.load`` with the spec's rate, offset and duration (0 = whole file)."""
    import librosa

    y, _ = librosa.load(path, sr=spec.sr, offset=spec.offset,
                        duration=spec.duration or None)
    return y
