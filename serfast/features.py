"""Per-clip features of the "seed" set, computed for many clips at once.

Reference definition (librosa 0.11, per clip ``y`` at ``sr``; means over frames)::

    zcr    = zero_crossing_rate(y=y)                     (1)
    chroma = chroma_stft(S=abs(stft(y)), sr=sr)          (12, tuning estimated per clip)
    mfcc   = mfcc(y=y, sr=sr)                            (20)
    rms    = rms(y=y)                                    (1)
    mel    = melspectrogram(y=y, sr=sr)                  (128)
    stats  = y.mean(), y.var(), skew(y), kurtosis(y),
             spectral_centroid(y=y, sr=sr).mean(), spectral_bandwidth(y=y, sr=sr).mean()

serfast computes one STFT per clip (float32 FFT over every frame of the batch in a single
call) and derives everything else from it in the kernels of ``serfast.kernels_cpu``.
Gender is not an audio feature: the store appends it from the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from . import kernels_cpu
from .filterbanks import TUNING_EDGES, filter_banks
from .spec import FeatureSpec

#: piptrack's default frequency range in Hz (fmin, fmax).
PITCH_RANGE = (150.0, 4000.0)


@dataclass
class BatchFeatures:
    """Features of a batch of clips.

    Attributes
    ----------
    values : (n_clips, len(spec.columns) - 1) float32
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


#: Frames per FFT call: bounds the framing and complex-spectrum buffers (~25 MB).
CHUNK_FRAMES = 1024


def _chunks(frame_off: np.ndarray) -> list[tuple[int, int]]:
    """Split frames [0, total) into runs of at most CHUNK_FRAMES, cutting anywhere."""
    total = int(frame_off[-1])
    return [(a, min(a + CHUNK_FRAMES, total)) for a in range(0, total, CHUNK_FRAMES)]


def _spectrum_chunk(signals, frame_off, first, last, spec, banks, mag, melpow, stats):
    """STFT frames ``first..last-1`` of the batch -> |X|, mel power and frame statistics."""
    clips = np.searchsorted(frame_off, np.arange(first, last), side="right") - 1
    pieces = np.unique(clips)
    piece_signals = [signals[c] for c in pieces]
    lengths = np.array([len(x) for x in piece_signals], np.int64)
    sig_off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = np.maximum(frame_off[pieces], first)
    ends = np.minimum(frame_off[pieces + 1], last)
    piece_off = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    buf = np.empty((last - first, spec.n_fft), np.float32)
    kernels_cpu.frame_batch(np.concatenate(piece_signals), sig_off,
                            (starts - frame_off[pieces]).astype(np.int64), piece_off,
                            banks.window, spec.hop_length, buf)
    spectra = scipy.fft.rfft(buf, axis=1, workers=1, overwrite_x=True)
    kernels_cpu.spectrum_frames(spectra, banks.freqs, banks.mel_start, banks.mel_stop,
                                banks.mel_offset, banks.mel_weights, mag, melpow, stats)


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
    """
    banks = filter_banks(spec)
    lengths = np.array([len(s) for s in signals], np.int64)
    if len(signals) == 0:
        width = len(spec.columns) - 1
        return BatchFeatures(np.zeros((0, width), np.float32), [] if frames else None)
    if lengths.min() < 1:
        raise ValueError("every clip needs at least one sample")
    counts = 1 + lengths // spec.hop_length
    frame_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n_frames_total = int(frame_off[-1])
    n_mels, n_clips = spec.n_mels, len(signals)
    mag = np.empty((n_frames_total, spec.n_bins), np.float32)
    melpow = np.empty((n_frames_total, n_mels), np.float32)
    frame_stats = np.empty((n_frames_total, 3), np.float64)
    for first, last in _chunks(frame_off):
        _spectrum_chunk(signals, frame_off, first, last, spec, banks,
                        mag[first:last], melpow[first:last], frame_stats[first:last])
    db = np.maximum(melpow, np.float32(1e-10))
    np.log10(db, out=db)
    db *= np.float32(10.0)

    means = np.empty((n_clips, 2 * n_mels + 2), np.float64)
    tunings = np.empty(n_clips, np.int64)
    logmel = np.empty((n_frames_total if frames else 0, n_mels), np.float32)
    k_lo, k_hi = pitch_bins(spec)
    kernels_cpu.clip_reduce(mag, melpow, db, frame_stats, frame_off, k_lo, k_hi,
                            spec.sr / spec.n_fft, TUNING_EDGES, spec.top_db, means, tunings,
                            logmel)
    chroma = np.empty((n_clips, spec.n_chroma), np.float64)
    for c, (a, b) in enumerate(zip(frame_off[:-1], frame_off[1:])):
        raw = mag[a:b] @ banks.chroma_t[tunings[c]]  # (n_frames, n_chroma)
        peak = np.abs(raw).max(axis=1, keepdims=True)
        peak[peak < np.finfo(np.float32).tiny] = 1.0  # librosa.util.normalize(norm=inf)
        chroma[c] = (raw / peak).mean(axis=0)

    timed = np.empty((n_clips, 6), np.float64)
    for i, s in enumerate(signals):
        kernels_cpu.time_features(s, spec.n_fft, spec.hop_length, timed[i])

    mel, centroid_bw = means[:, :n_mels], means[:, n_mels:n_mels + 2]
    mfcc = means[:, n_mels + 2:] @ banks.dct.astype(np.float64)
    values = np.concatenate([
        timed[:, :1], chroma, mfcc, timed[:, 1:2], mel, timed[:, 2:6], centroid_bw,
    ], axis=1).astype(np.float32)

    frame_list = None
    if frames:
        mfcc_frames = logmel @ banks.dct
        frame_list = [np.concatenate([logmel[a:b], mfcc_frames[a:b]], axis=1)
                      for a, b in zip(frame_off[:-1], frame_off[1:])]
    return BatchFeatures(values, frame_list)
