"""Per-clip features of the "seed" set, for one clip or a batch of them.

Reference definition (librosa 0.11, per clip ``y`` at ``sr``; means over frames)::

    zcr    = zero_crossing_rate(y=y)                     (1)
    chroma = chroma_stft(S=abs(stft(y)), sr=sr)          (12, tuning estimated per clip)
    mfcc   = mfcc(y=y, sr=sr)                            (20)
    rms    = rms(y=y)                                    (1)
    mel    = melspectrogram(y=y, sr=sr)                  (128)
    stats  = y.mean(), y.var(), skew(y), kurtosis(y),
             spectral_centroid(y=y, sr=sr).mean(), spectral_bandwidth(y=y, sr=sr).mean()

serfast computes one float32 STFT per clip (SciPy's FFT over all its frames at once) and
derives everything else from it in the kernels of ``serfast.kernels_cpu``. Clips are
independent: a clip's row is the same alone or in any batch.
Gender is not an audio feature: the store appends it from the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft

from . import cpu_kernels
from .filterbanks import TUNING_EDGES, FilterBanks, filter_banks
from ..malloc import reuse_freed_memory
from .spec import FeatureSpec

#: piptrack's default frequency range in Hz (fmin, fmax).
PITCH_RANGE = (150.0, 4000.0)


@dataclass
class BatchFeatures:
    """Features of a batch of clips.

    Attributes
    ----------
    values : (n_clips, spec.n_features) float32
        Clip features in store column order, without ``gender``.
    frames : list of (n_frames_i, n_mels + n_mfcc) float32, or None
        Per-frame log-mel (dB) and MFCC of each clip when asked for.
    """

    values: np.ndarray
    frames: list[np.ndarray] | None


def pitch_bins(spec: FeatureSpec) -> tuple[int, int]:
    """FFT bins [lo, hi) that ``piptrack`` searches for peaks (``PITCH_RANGE``)."""
    k_lo = int(np.ceil(PITCH_RANGE[0] * spec.n_fft / spec.sr))
    k_hi = int(np.ceil(min(PITCH_RANGE[1], spec.sr / 2) * spec.n_fft / spec.sr))
    return max(k_lo, 1), min(k_hi, spec.n_bins - 1)


def n_frames(n_samples: int, spec: FeatureSpec) -> int:
    """Frames of a centred STFT of ``n_samples`` samples: ``1 + n // hop``."""
    return 1 + n_samples // spec.hop_length


#: ``reuse_freed_memory`` once per process: a clip allocates and frees ~3 MB of buffers.
_reuse_freed_memory_once = cache(reuse_freed_memory)

#: Frames per FFT call: bounds the framing and complex-spectrum buffers (~17 MB) however
#: long the clip.
CHUNK_FRAMES = 1024


def clip_features(y: np.ndarray, spec: FeatureSpec, banks: FilterBanks, out: np.ndarray,
                  frames: bool = False) -> np.ndarray | None:
    """The seed features of one clip, written into ``out``.

    y : (n,) float32, n >= 1, mono at ``spec.sr``.  out : (spec.n_features,)
    float32, the store row without gender.  Returns the clip's clamped log-mel frames
    ((n_frames, n_mels) float32 dB) when ``frames``, else None.
    """
    count = n_frames(len(y), spec)
    mag = np.empty((count, spec.n_bins), np.float32)
    melpow = np.empty((count, spec.n_mels), np.float32)
    frame_stats = np.empty((count, 2), np.float64)
    k_lo, k_hi = pitch_bins(spec)
    # a frame has at most one peak per two bins of the searched range
    pitches = np.empty(count * ((k_hi - k_lo) // 2 + 1), np.float32)
    pitch_mags = np.empty_like(pitches)
    found = 0
    buf = np.empty((min(count, CHUNK_FRAMES), spec.n_fft), np.float32)
    for first in range(0, count, CHUNK_FRAMES):
        last = min(first + CHUNK_FRAMES, count)
        cpu_kernels.frame_clip(y, first, banks.window, spec.hop_length, buf[:last - first])
        spectra = scipy.fft.rfft(buf[:last - first], axis=1, workers=1)
        found = cpu_kernels.spectrum_frames(
            spectra, banks.freqs, banks.mel_start, banks.mel_stop, banks.mel_offset,
            banks.mel_weights, k_lo, k_hi, spec.sr / spec.n_fft, mag[first:last],
            melpow[first:last], frame_stats[first:last], pitches, pitch_mags, found)
    db = np.maximum(melpow, np.float32(1e-10))
    np.log10(db, out=db)
    db *= np.float32(10.0)
    logmel = np.empty((count if frames else 0, spec.n_mels), np.float32)
    cpu_kernels.clip_finish(y, spec.n_fft, spec.hop_length, mag, melpow, db, frame_stats,
                            pitches, pitch_mags, found, TUNING_EDGES, banks.chroma_t,
                            banks.dct, spec.top_db, out, logmel)
    return logmel if frames else None


def compute_batch(signals: list[np.ndarray], spec: FeatureSpec = FeatureSpec(),
                  frames: bool = False) -> BatchFeatures:
    """Compute the seed features of every clip in ``signals``.

    Parameters
    ----------
    signals : list of (n_i,) float32 arrays
        Mono clips at ``spec.sr``, each with at least one finite sample.
    spec : FeatureSpec
    frames : bool
        Also return frame-level log-mel and MFCC.

    The first call makes this process's malloc keep freed blocks for reuse
    (``serfast.malloc``): otherwise every clip's buffers are faulted in afresh.
    """
    _reuse_freed_memory_once()
    banks = filter_banks(spec)
    if any(len(y) < 1 for y in signals):
        raise ValueError("every clip needs at least one sample")
    values = np.empty((len(signals), spec.n_features), np.float32)
    logmels = [clip_features(y, spec, banks, values[i], frames)
               for i, y in enumerate(signals)]
    if not frames:
        return BatchFeatures(values, None)
    return BatchFeatures(values, [np.concatenate([m, m @ banks.dct], axis=1)
                                  for m in logmels])
