"""The feature specification: one description of what serfast computes, for every backend.

A :class:`FeatureSpec` fixes the audio crop, the STFT and the filter banks, and owns the
store's column layout (:attr:`FeatureSpec.slices`). It is saved next to every store
(``OUT.json``) so that a model knows exactly which features it was trained on.
:func:`n_frames` and :func:`pitch_bins` are the frame grid and piptrack's search range
that every backend shares (:func:`inside_frame_range`: which frames of a centred framing
need no padding); :class:`BatchFeatures` is what every backend returns. Pure:
imports nothing but NumPy (librosa's constants are in ``librosa_constants``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .librosa_constants import PITCH_RANGE

__all__ = ["BatchFeatures", "EMBEDDING_COLUMNS", "EMBEDDING_SIZE", "FEATURE_SETS", "FeatureSpec",
           "PROSODY_FRAME_COLUMNS", "SHAPE_TRACKS", "STORE_SPEC", "inside_frame_range",
           "n_frames", "pitch_bins"]

#: The named feature sets: ``seed`` (the SER-FusionNet method's 169 columns), ``prosody``
#: (pitch, voice quality, loudness dynamics, spectral shape and frame statistics) and
#: ``all`` (seed, then prosody). ``FeatureSpec.name`` is the set.
FEATURE_SETS = ("seed", "prosody", "all")
#: Names of the waveform-moment columns, in store order.
_MOMENT_COLUMNS = ("wave_mean", "wave_var", "wave_skew", "wave_kurtosis")
#: Digits of the index in the names of the multi-column groups (``mel_007``).
_INDEX_DIGITS = {"chroma": 2, "mfcc": 2, "mel": 3}
#: Per-clip pYIN statistics (``serfast.features.pitch.PITCH_COLUMNS``).
_PITCH_COLUMNS = ("f0_mean", "f0_std", "f0_p10", "f0_p50", "f0_p90", "f0_range_st",
                  "f0_slope_st_s", "f0_delta_abs_st", "voiced_fraction", "voicing_prob_mean")
#: Voice quality (``serfast.features.voice.VOICE_COLUMNS``).
_VOICE_COLUMNS = ("jitter_local", "shimmer_local_db", "hnr_db")
#: Loudness dynamics of the frame RMS in dB (``serfast.features.shape``).
_LOUDNESS_COLUMNS = ("rms_db_mean", "rms_db_std", "rms_db_p20_p80", "rms_db_rise_db_s",
                     "rms_db_fall_db_s")
#: Per-frame spectral-shape tracks, in store order: spectral contrast of 7 bands,
#: flatness, 85 % roll-off (Hz), onset strength.
SHAPE_TRACKS = tuple(f"contrast_{i}" for i in range(7)) + ("flatness", "rolloff", "onset")
#: Per-frame columns that the prosody sets add to the frame-level store: pYIN F0 in Hz
#: (0 where unvoiced), pYIN voicing probability, frame RMS in dB.
PROSODY_FRAME_COLUMNS = ("f0_hz", "voicing_prob", "rms_db")
#: Columns of the speaker embedding (``FeatureSpec.embedding``), from the shipped voice
#: encoder (``serfast.features.voice_encoder.clip_embeddings``): its unit vector, then the
#: mean over the frames of its second LSTM layer's outputs.
EMBEDDING_COLUMNS = (tuple(f"embedding_{i:03d}" for i in range(256))
                     + tuple(f"encoder_layer2_{i:03d}" for i in range(256)))
EMBEDDING_SIZE = len(EMBEDDING_COLUMNS)
#: The prosody groups, in store order, with their column names.
_PROSODY_GROUPS = (
    ("pitch", _PITCH_COLUMNS), ("voice", _VOICE_COLUMNS), ("loudness", _LOUDNESS_COLUMNS),
    ("shape_mean", tuple(f"{t}_mean" for t in SHAPE_TRACKS)),
    ("shape_std", tuple(f"{t}_std" for t in SHAPE_TRACKS)),
    ("shape_delta", tuple(f"{t}_delta_abs" for t in SHAPE_TRACKS)),
)


@dataclass(frozen=True)
class FeatureSpec:
    """Parameters of a feature set (librosa defaults of the SER-FusionNet method).

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
    name : str
        The feature set, one of :data:`FEATURE_SETS`; it decides :attr:`columns`.
    embedding : bool
        Also store the voice encoder's view of the clip's centre 1.6 s
        (:data:`EMBEDDING_COLUMNS`, after the set's columns, before gender). Standardised
        per speaker, how a voice departs from its own mean carries emotion across corpora
        (bench/RESULTS.md).
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
    embedding: bool = False

    @property
    def n_bins(self) -> int:
        """Number of one-sided FFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def __post_init__(self) -> None:
        if self.name not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.name!r}; choose one of "
                             f"{', '.join(FEATURE_SETS)}")

    @property
    def has_seed(self) -> bool:
        """Whether the set holds the seed columns (``seed`` and ``all``)."""
        return self.name in ("seed", "all")

    @property
    def has_prosody(self) -> bool:
        """Whether the set holds the prosody columns (``prosody`` and ``all``)."""
        return self.name in ("prosody", "all")

    @property
    def seed(self) -> "FeatureSpec":
        """This spec with the seed set and no embedding: what the seed kernels compute."""
        return replace(self, name="seed", embedding=False)

    def _seed_groups(self) -> tuple[tuple[str, int], ...]:
        return (("zcr", 1), ("chroma", self.n_chroma), ("mfcc", self.n_mfcc), ("rms", 1),
                ("mel", self.n_mels), ("moments", len(_MOMENT_COLUMNS)), ("centroid", 1),
                ("bandwidth", 1))

    def _prosody_groups(self) -> tuple[tuple[str, int], ...]:
        return tuple((g, len(names)) for g, names in _PROSODY_GROUPS) + (
            ("mfcc_std", self.n_mfcc), ("mfcc_delta", self.n_mfcc))

    def _group_sizes(self) -> tuple[tuple[str, int], ...]:
        """(group, columns) in store order: the one statement of the layout (seed
        groups, then prosody groups, then the embedding, then gender)."""
        return ((self._seed_groups() if self.has_seed else ())
                + (self._prosody_groups() if self.has_prosody else ())
                + ((("embedding", EMBEDDING_SIZE),) if self.embedding else ())
                + (("gender", 1),))

    @property
    def slices(self) -> dict[str, slice]:
        """Store columns of each group, as slices of a row of :attr:`columns`.

        Feature groups: ``zcr``, ``chroma``, ``mfcc``, ``rms``, ``mel`` (frame means),
        ``moments`` (waveform mean, variance, skew, kurtosis), ``centroid``,
        ``bandwidth``, ``gender``; and blocks of them: ``acoustic`` (zcr to mel, 162
        columns by default), ``stats`` (the six statistical columns: moments, centroid,
        bandwidth) and ``values`` (everything computed from audio: all but gender).
        Sets with prosody add the groups ``pitch``, ``voice``, ``loudness``,
        ``shape_mean``, ``shape_std``, ``shape_delta``, ``mfcc_std``, ``mfcc_delta`` and
        the block ``prosody`` (all of them); sets with the seed columns have the block
        ``seed`` (zcr to bandwidth). ``acoustic`` and ``stats`` exist only with ``seed``.
        With :attr:`embedding`, the group ``embedding`` precedes gender.
        """
        out, at = {}, 0
        for name, size in self._group_sizes():
            out[name] = slice(at, at + size)
            at += size
        if self.has_seed:
            out["acoustic"] = slice(0, out["mel"].stop)
            out["stats"] = slice(out["moments"].start, out["bandwidth"].stop)
            out["seed"] = slice(0, out["bandwidth"].stop)
        if self.has_prosody:
            out["prosody"] = slice(out["pitch"].start, out["mfcc_delta"].stop)
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
        out, named = [], dict(_PROSODY_GROUPS)
        for name, size in self._group_sizes():
            if name in named:
                out += named[name]
            elif name in ("mfcc_std", "mfcc_delta"):
                suffix = "std" if name == "mfcc_std" else "delta_abs"
                out += [f"mfcc_{i:02d}_{suffix}" for i in range(size)]
            elif name in _INDEX_DIGITS:
                out += [f"{name}_{i:0{_INDEX_DIGITS[name]}d}" for i in range(size)]
            elif name == "embedding":
                out += EMBEDDING_COLUMNS
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
        """Columns of the frame-level store: log-mel in dB, then MFCC, then (sets with
        prosody) :data:`PROSODY_FRAME_COLUMNS`."""
        return ([f"logmel_{i:03d}" for i in range(self.n_mels)]
                + [f"mfcc_{i:02d}" for i in range(self.n_mfcc)]
                + (list(PROSODY_FRAME_COLUMNS) if self.has_prosody else []))

    def to_dict(self) -> dict:
        """JSON-ready form, as saved in ``OUT.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


#: What ``serfast extract`` computes unless told otherwise: the seed and prosody columns and
#: the speaker embedding of each whole clip, the store that serfast train's default recipe
#: does best on and that the shipped ``default`` and ``telephone`` models read.
#: ``FeatureSpec()`` stays the method's seed set and its 0.6 s + 2.5 s crop.
STORE_SPEC = FeatureSpec(name="all", offset=0.0, duration=0.0, embedding=True)


def n_frames(n_samples, spec: FeatureSpec):
    """Frames of a centred STFT of ``n_samples`` samples: ``1 + n // hop`` (an int, or an
    integer array for an array of lengths)."""
    return 1 + n_samples // spec.hop_length


def inside_frame_range(length: int, frame_length: int, hop: int) -> tuple[int, int]:
    """Frames [t0, t1) of a ``length``-sample clip framed centred (frame ``t`` on sample
    ``t * hop``, ``frame_length`` samples, zero-padded) that lie wholly inside it, without
    padding (t1 <= t0: none)."""
    half = frame_length // 2
    t0 = -(-half // hop)
    t1 = (length - half) // hop + 1 if length >= half else 0
    return t0, min(t1, 1 + length // hop)


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
    frames : list of (n_frames_i, len(spec.frame_columns)) float32, or None
        Per-frame log-mel (dB) and MFCC (and F0, voicing probability and RMS dB with
        prosody) of each clip (``spec.frame_columns``) when asked for.
    """

    values: np.ndarray
    frames: list[np.ndarray] | None
