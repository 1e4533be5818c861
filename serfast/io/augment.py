"""Data augmentation of decoded clips: the method's four, plus telephone audio.

``telephone`` is a call: 300-3,400 Hz band, 8 kHz, line noise (most copies) and µ-law,
for models that label call audio (``--augment telephone --copies 3``).

Each augmentation is a pure function ``(y, sr, rng) -> y`` on a mono float32 clip at
``sr`` Hz; ``rng`` (a NumPy Generator) makes it deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AUGMENTATIONS", "LINE_NOISE_SHARE", "LINE_SNR_DB", "add_noise", "augment",
           "line_noise", "low_pass", "pitch_shift", "telephone", "time_stretch"]


def add_noise(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """White noise at a random level up to 3.5 % of the clip's peak amplitude."""
    amp = 0.035 * rng.uniform() * float(np.max(np.abs(y)))
    return (y + amp * rng.standard_normal(y.shape[0])).astype(np.float32)


def time_stretch(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Phase-vocoder time stretch by a random rate in [0.8, 1.25] (librosa)."""
    import librosa

    rate = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    return librosa.effects.time_stretch(y, rate=rate).astype(np.float32)


def pitch_shift(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pitch shift by a random ±(0.5…2) semitones (librosa, soxr_hq resampling)."""
    import librosa

    steps = float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
    return librosa.effects.pitch_shift(y, sr=sr, n_steps=steps).astype(np.float32)


def low_pass(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-phase 4th-order Butterworth low-pass at a random 2–4 kHz cut-off."""
    import scipy.signal

    cutoff = min(float(rng.uniform(2000.0, 4000.0)), 0.45 * sr)
    sos = scipy.signal.butter(4, cutoff, btype="lowpass", fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, y).astype(np.float32)


#: Line noise of the telephone augmentation: signal-to-noise ratio range (dB re the
#: clip's speech level) and the share of copies that get it.
LINE_SNR_DB = (15.0, 40.0)
LINE_NOISE_SHARE = 0.8


def line_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background of a call: pink, white or brown-ish noise plus mains hum."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.maximum(np.arange(len(spec)), 1) ** (rng.uniform(0.0, 1.5) / 2)
    x = np.fft.irfft(spec, n)
    x /= x.std() + 1e-12
    hum = np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * np.arange(n) / sr
                 + rng.uniform(0, 2 * np.pi))
    x = x + rng.uniform(0.0, 0.5) * hum
    return x / (x.std() + 1e-12)


def telephone(y: np.ndarray, sr: int, rng: np.random.Generator | None) -> np.ndarray:
    """A telephone channel: 300–3,400 Hz band, 8 kHz, line noise, 8-bit µ-law, back to
    ``sr``. Line noise (:func:`line_noise`, :data:`LINE_SNR_DB` under the clip's speech
    level) goes into :data:`LINE_NOISE_SHARE` of the copies; ``rng`` None: none (the
    codec alone)."""
    import scipy.signal

    from .audio import resample

    sos = scipy.signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    narrow = resample(scipy.signal.sosfilt(sos, y).astype(np.float32), sr, 8000)
    if rng is not None and len(narrow) and rng.uniform() < LINE_NOISE_SHARE:
        peak = float(np.abs(narrow).max())
        loud = narrow[np.abs(narrow) > 0.1 * peak]
        level = float(np.sqrt(np.mean(loud ** 2))) if len(loud) else 0.0
        snr = rng.uniform(*LINE_SNR_DB)
        narrow = narrow + level * 10 ** (-snr / 20) * line_noise(len(narrow), 8000, rng)
    mu = 255.0
    x = np.clip(narrow, -1.0, 1.0)
    code = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    decoded = 2 * code / mu - 1
    decoded = np.sign(decoded) * np.expm1(np.abs(decoded) * np.log1p(mu)) / mu
    out = resample(decoded.astype(np.float32), 8000, sr)
    return np.ascontiguousarray(out[: y.shape[0]], dtype=np.float32)


AUGMENTATIONS = {
    "noise": add_noise,
    "stretch": time_stretch,
    "pitch": pitch_shift,
    "lowpass": low_pass,
    "telephone": telephone,
}


def augment(kind: str, y: np.ndarray, sr: int, seed: int, row: int) -> np.ndarray:
    """Apply augmentation ``kind`` to ``y``, seeded by (seed, row) so reruns match."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[kind](y, sr, np.random.default_rng([seed, row]))
