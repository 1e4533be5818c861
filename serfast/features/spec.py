"""The feature specification: one description of what serfast computes, for every backend.

A :class:`FeatureSpec` fixes the audio crop, the STFT and the filter banks. It is saved
next to every store (``OUT.json``) so that a model knows exactly which features it was
trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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

    @property
    def n_features(self) -> int:
        """Columns computed from audio: all of :attr:`columns` but ``gender`` (168 by
        default). Arithmetic, so cheap enough to ask once per clip."""
        return 1 + self.n_chroma + self.n_mfcc + 1 + self.n_mels + len(self.stat_columns)

    @property
    def acoustic_columns(self) -> list[str]:
        """The 162 (by default) frame-mean columns, in store order."""
        return (
            ["zcr_mean"]
            + [f"chroma_{i:02d}" for i in range(self.n_chroma)]
            + [f"mfcc_{i:02d}" for i in range(self.n_mfcc)]
            + ["rms_mean"]
            + [f"mel_{i:03d}" for i in range(self.n_mels)]
        )

    @property
    def stat_columns(self) -> list[str]:
        """The six statistical columns of the method."""
        return ["wave_mean", "wave_var", "wave_skew", "wave_kurtosis",
                "centroid_mean", "bandwidth_mean"]

    @property
    def columns(self) -> list[str]:
        """All store columns: acoustic, statistical, then ``gender`` (169 by default)."""
        return self.acoustic_columns + self.stat_columns + ["gender"]

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
