"""Per-clip features of a feature set (``FeatureSpec.name``), for one clip or a batch.

Reference definition (librosa 0.11, per clip ``y`` at ``sr``; means over frames)::

    zcr    = zero_crossing_rate(y=y)                     (1)
    chroma = chroma_stft(S=abs(stft(y)), sr=sr)          (12, tuning estimated per clip)
    mfcc   = mfcc(y=y, sr=sr)                            (20)
    rms    = rms(y=y)                                    (1)
    mel    = melspectrogram(y=y, sr=sr)                  (128)
    stats  = y.mean(), y.var(), skew(y), kurtosis(y),
             spectral_centroid(y=y, sr=sr).mean(), spectral_bandwidth(y=y, sr=sr).mean()

serfast computes one float32 STFT per clip (SciPy's FFT over all its frames at once) and
derives everything else from it in the kernels of ``serfast.features.cpu_kernels``; the
column layout and librosa's constants come from ``spec`` and ``librosa_constants``. Clips
are independent: a clip's row is the same alone or in any batch.
Sets with prosody add the columns of ``serfast.features.shape`` from the same STFT
magnitude and clamped log-mel, and pitch and voice quality from one pYIN pass.
With ``spec.embedding``, each clip's speaker embedding (``voice_encoder.clip_embeddings``,
onnxruntime) fills the ``embedding`` columns. Gender is not an audio feature: the store
appends it from the corpus.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from . import cpu_kernels, shape
from .filterbanks import FilterBanks, filter_banks
from .librosa_constants import AMIN, TUNING_EDGES
from .spec import BatchFeatures, FeatureSpec, n_frames, pitch_bins
from .voice_encoder import clip_embeddings

__all__ = ["CHUNK_FRAMES", "KERNEL_GROUPS", "clip_features", "column_starts",
           "compute_batch"]

#: The column groups whose first columns ``cpu_kernels.clip_finish`` takes, in its order.
KERNEL_GROUPS = ("zcr", "chroma", "mfcc", "rms", "mel", "moments", "centroid", "bandwidth")

#: Frames per FFT call: bounds the framing and complex-spectrum buffers (~17 MB) however
#: long the clip.
CHUNK_FRAMES = 1024


def column_starts(spec: FeatureSpec) -> np.ndarray:
    """(len(KERNEL_GROUPS),) int64: where each of ``KERNEL_GROUPS`` starts in the seed
    block of a row (``spec.seed.slices``), as ``cpu_kernels.clip_finish`` takes them."""
    slices = spec.seed.slices
    return np.array([slices[g].start for g in KERNEL_GROUPS], np.int64)


def clip_features(y: np.ndarray, spec: FeatureSpec, banks: FilterBanks, starts: np.ndarray,
                  out: np.ndarray, frames: bool = False,
                  pitch_voice: tuple | None = None) -> np.ndarray | None:
    """The features of one clip but its speaker embedding, written into ``out``.

    y : (n,) float32, n >= 1, mono at ``spec.sr``.  starts : ``column_starts(spec)``.
    out : (spec.n_features,) float32, the store row without gender.  pitch_voice : the
    clip's ``shape.pitch_voice(y, spec)`` where the caller knows it.  Returns the clip's
    clamped log-mel frames ((n_frames, n_mels) float32 dB), followed with prosody by
    F0, voicing probability and RMS dB ((n_frames, n_mels + 3)), when ``frames``, else
    None.
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
    db = np.maximum(melpow, np.float32(AMIN))
    np.log10(db, out=db)
    db *= np.float32(10.0)
    keep = frames or spec.has_prosody
    logmel = np.empty((count if keep else 0, spec.n_mels), np.float32)
    seed_out = out[spec.slices["seed"]] if spec.has_seed else np.empty(
        spec.seed.n_features, np.float32)
    cpu_kernels.clip_finish(y, spec.n_fft, spec.hop_length, mag, melpow, db, frame_stats,
                            pitches, pitch_mags, found, TUNING_EDGES, banks.chroma_t,
                            banks.dct, spec.top_db, starts, seed_out, logmel)
    if not spec.has_prosody:
        return logmel if frames else None
    at = spec.slices
    out[at["pitch"].start:at["voice"].stop], pitch_frames = (
        shape.pitch_voice(y, spec) if pitch_voice is None else pitch_voice)
    rms = shape.frame_rms(y[None], np.array([len(y)]), count, spec, np)
    values, rms_db = shape.spectral_values(shape.frame_shape(mag[None], spec, np), logmel[None],
                                          rms, banks.dct, spec, np)
    out[at["loudness"].start:at["mfcc_delta"].stop] = values[0]
    if not frames:
        return None
    return np.concatenate([logmel, pitch_frames, rms_db[0, :, None].astype(np.float32)], axis=1)


def compute_batch(signals: list[np.ndarray], spec: FeatureSpec = FeatureSpec(),
                  frames: bool = False, pitch_voice=None) -> BatchFeatures:
    """Compute the features of ``spec``'s set for every clip in ``signals``.

    Parameters
    ----------
    signals : list of (n_i,) float32 arrays
        Mono clips at ``spec.sr``, each with at least one finite sample.
    spec : FeatureSpec
    frames : bool
        Also return the frame-level columns (``spec.frame_columns``).
    pitch_voice : callable, optional
        ``pitch_voice(indices)``: ``shape.pitch_voice`` of the clips at these indices of
        ``signals``, from a caller that can compute them more cheaply (a channel's
        windows share pitch frames: ``serfast.calls.window_prosody.ChannelProsody``).
        Default: each clip's own.

    A clip allocates and frees ~3 MB of buffers: a program that computes many clips
    should call :func:`serfast.malloc.reuse_freed_memory` once (serfast's CLI and workers
    do), or every clip's buffers are faulted in afresh.
    """
    banks = filter_banks(spec)
    if any(len(y) < 1 for y in signals):
        raise ValueError("every clip needs at least one sample")
    values = np.empty((len(signals), spec.n_features), np.float32)
    starts = column_starts(spec)
    known = (pitch_voice(list(range(len(signals)))) if pitch_voice and spec.has_prosody
             else [None] * len(signals))
    logmels = [clip_features(y, spec, banks, starts, values[i], frames, known[i])
               for i, y in enumerate(signals)]
    if spec.embedding:
        values[:, spec.slices["embedding"]] = clip_embeddings(signals, spec.sr)
    if not frames:
        return BatchFeatures(values, None)
    n_mels = spec.n_mels
    return BatchFeatures(values, [np.concatenate([m[:, :n_mels], m[:, :n_mels] @ banks.dct,
                                                  m[:, n_mels:]], axis=1) for m in logmels])
