"""The feature specification: one description of what serfast computes, for every backend.

A :class:`FeatureSpec` fixes the audio crop, the STFT and the filter banks, and owns the
store's column layout (:attr:`FeatureSpec.slices`). It is saved next to every store
(``OUT.json``) so that a model knows exactly which features it was trained on.
:func:`n_frames` and :func:`pitch_bins` are the frame grid and piptrack's search range
that every backend shares; :class:`BatchFeatures` is what every backend returns. Pure:
imports nothing but NumPy (librosa's constants are in ``librosa_constants``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .librosa_constants import PITCH_RANGE

__all__ = ["BatchFeatures", "FeatureSpec", "n_frames", "pitch_bins"]

#: Names of the waveform-moment columns, in store order.
_MOMENT_COLUMNS = ("wave_mean", "wave_var", "wave_skew", "wave_kurtosis")
#: Digits of the index in the names of the multi-column groups (``mel_007``).
_INDEX_DIGITS = {"chroma": 2, "mfcc": 2, "mel": 3}


@dataclass(frozen=True)
class FeatureSpec:
    """Parameters of the "seed" feature set (librosa defaults of the SER-FusionNet method).

    Attributes
    ----------
    sr : int
        Sample rate in Hz that every clip is resampled to.
    offset : float
        Seconds skipped at the start of each file.
    duration : float
        Seconds kept after ``offset``; 0 keeps the rest of the file.
    n_fft, hop_length : int
        STFT size and hop in samples (Hann window, centred frames, zero padding).
    n_mels, n_mfcc, n_chroma : int
        Mel bands (Slaney), MFCC coefficients (DCT-II, ortho) and chroma bins.
    top_db : float
        Dynamic range of the dB mel spectrogram behind the MFCCs.
    """

    sr: int = 22050
    offset: float = 0.6
    duration: float = 2.5
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    n_chroma: int = 12
    top_db: float = 80.0
    name: str = field(default="seed")

    @property
    def n_bins(self) -> int:
        """Number of one-sided FFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def _group_sizes(self) -> tuple[tuple[str, int], ...]:
        """(group, columns) in store order: the one statement of the layout."""
        return (("zcr", 1), ("chroma", self.n_chroma), ("mfcc", self.n_mfcc), ("rms", 1),
                ("mel", self.n_mels), ("moments", len(_MOMENT_COLUMNS)), ("centroid", 1),
                ("bandwidth", 1), ("gender", 1))

    @property
    def slices(self) -> dict[str, slice]:
        """Store columns of each group, as slices of a row of :attr:`columns`.

        Feature groups: ``zcr``, ``chroma``, ``mfcc``, ``rms``, ``mel`` (frame means),
        ``moments`` (waveform mean, variance, skew, kurtosis), ``centroid``,
        ``bandwidth``, ``gender``; and blocks of them: ``acoustic`` (zcr to mel, 162
        columns by default), ``stats`` (the six statistical columns: moments, centroid,
        bandwidth) and ``values`` (everything computed from audio: all but gender).
        """
        out, at = {}, 0
        for name, size in self._group_sizes():
            out[name] = slice(at, at + size)
            at += size
        out["acoustic"] = slice(0, out["mel"].stop)
        out["stats"] = slice(out["moments"].start, out["bandwidth"].stop)
        out["values"] = slice(0, out["gender"].start)
        return out

    @property
    def n_acoustic(self) -> int:
        """Frame-mean columns, zcr to mel (162 by default): ``slices["acoustic"].stop``."""
        return self.slices["acoustic"].stop

    @property
    def n_features(self) -> int:
        """Columns computed from audio: all of :attr:`columns` but ``gender`` (168 by
        default). Arithmetic, so cheap enough to ask once per clip."""
        return sum(size for name, size in self._group_sizes() if name != "gender")

    @property
    def columns(self) -> list[str]:
        """All store columns in store order (169 by default), group after group of
        :attr:`slices`."""
        out = []
        for name, size in self._group_sizes():
            if name in _INDEX_DIGITS:
                out += [f"{name}_{i:0{_INDEX_DIGITS[name]}d}" for i in range(size)]
            elif name == "moments":
                out += _MOMENT_COLUMNS
            else:
                out.append("gender" if name == "gender" else f"{name}_mean")
        return out

    @property
    def acoustic_columns(self) -> list[str]:
        """The frame-mean columns (``slices["acoustic"]``, 162 by default)."""
        return self.columns[self.slices["acoustic"]]

    @property
    def stat_columns(self) -> list[str]:
        """The six statistical columns of the method (``slices["stats"]``)."""
        return self.columns[self.slices["stats"]]

    @property
    def frame_columns(self) -> list[str]:
        """Columns of the frame-level store: log-mel in dB, then MFCC."""
        return ([f"logmel_{i:03d}" for i in range(self.n_mels)]
                + [f"mfcc_{i:02d}" for i in range(self.n_mfcc)])

    def to_dict(self) -> dict:
        """JSON-ready form, as saved in ``OUT.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def n_frames(n_samples, spec: FeatureSpec):
    """Frames of a centred STFT of ``n_samples`` samples: ``1 + n // hop`` (an int, or an
    integer array for an array of lengths)."""
    return 1 + n_samples // spec.hop_length


def pitch_bins(spec: FeatureSpec) -> tuple[int, int]:
    """FFT bins [lo, hi) that ``piptrack`` searches for peaks (``PITCH_RANGE``, fmax
    capped at Nyquist); ``1 <= lo`` and ``hi <= n_bins - 1``, so both neighbours of a bin
    exist."""
    k_lo = math.ceil(PITCH_RANGE[0] * spec.n_fft / spec.sr)
    k_hi = math.ceil(min(PITCH_RANGE[1], spec.sr / 2) * spec.n_fft / spec.sr)
    return max(k_lo, 1), min(k_hi, spec.n_bins - 1)


@dataclass
class BatchFeatures:
    """Features of a batch of clips, as every backend returns them (host arrays).

    Attributes
    ----------
    values : (n_clips, spec.n_features) float32
        Clip features in store column order (``spec.slices``), without ``gender``.
    frames : list of (n_frames_i, n_mels + n_mfcc) float32, or None
        Per-frame log-mel (dB) and MFCC of each clip (``spec.frame_columns``) when asked
        for.
    """

    values: np.ndarray
    frames: list[np.ndarray] | None
