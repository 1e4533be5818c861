"""Filter banks and transform matrices shared by all backends, built with librosa.

serfast never re-derives librosa's filter banks: it asks librosa for them once per spec,
then hands them to the kernels in the layout the kernels want (a sparse mel bank, a table
of chroma banks indexed by estimated tuning).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .librosa_constants import TUNING_EDGES
from .spec import FeatureSpec
from .table_cache import cached_tables

__all__ = ["FilterBanks", "cached_filter_banks", "filter_banks", "install_filter_banks"]


@dataclass(frozen=True)
class FilterBanks:
    """Everything a kernel needs besides the audio.

    Attributes
    ----------
    window : (n_fft,) float32
        Periodic Hann window.
    freqs : (n_bins,) float32
        Centre frequency of each FFT bin in Hz.
    mel_start, mel_stop : (n_mels,) int64
        First and one-past-last non-zero FFT bin of each mel filter.
    mel_offset : (n_mels + 1,) int64
        Where each filter's weights start in ``mel_weights``.
    mel_weights : (nnz,) float32
        Non-zero weights of librosa's Slaney mel bank, filter after filter.
    chroma_t : (len(TUNING_EDGES) - 1, n_bins, n_chroma) float32
        librosa's chroma bank, transposed, for every tuning ``estimate_tuning`` returns.
    dct : (n_mels, n_mfcc) float32
        Orthonormal DCT-II matrix: ``mfcc = log_mel @ dct``.
    """

    window: np.ndarray
    freqs: np.ndarray
    mel_start: np.ndarray
    mel_stop: np.ndarray
    mel_offset: np.ndarray
    mel_weights: np.ndarray
    chroma_t: np.ndarray
    dct: np.ndarray

    def mel_dense(self, n_bins: int) -> np.ndarray:
        """The mel bank as a dense (n_mels, n_bins) float32 matrix (for GEMM backends)."""
        out = np.zeros((len(self.mel_start), n_bins), np.float32)
        for m, (a, b) in enumerate(zip(self.mel_start, self.mel_stop)):
            out[m, a:b] = self.mel_weights[self.mel_offset[m]:self.mel_offset[m + 1]]
        return out


_BUILT: dict[FeatureSpec, FilterBanks] = {}


def install_filter_banks(spec: FeatureSpec, banks: FilterBanks) -> None:
    """Hand a worker process banks built elsewhere, so it never imports librosa."""
    _BUILT[spec] = banks


def filter_banks(spec: FeatureSpec) -> FilterBanks:
    """The banks for ``spec``: from this process, else the disk cache, else librosa.

    Building them imports librosa and asks it for 100 chroma banks (about half a second),
    so they are cached under ``$SERFAST_CACHE`` (default ``~/.cache/serfast``), keyed by
    the spec and the librosa and SciPy versions (:mod:`serfast.features.table_cache`).
    """
    if spec not in _BUILT:
        _BUILT[spec] = cached_filter_banks(spec)
    return _BUILT[spec]


def cached_filter_banks(spec: FeatureSpec) -> FilterBanks:
    """The banks for ``spec`` from the disk cache, else built with librosa and saved there
    (:func:`serfast.features.table_cache.cached_tables`)."""
    tables = cached_tables("banks", [spec.to_dict(), 1], lambda: asdict(_build(spec)))
    return FilterBanks(**tables)


def _build(spec: FeatureSpec) -> FilterBanks:
    import librosa.filters  # heavy imports, kept out of module import time
    import scipy.fft

    mel = librosa.filters.mel(sr=spec.sr, n_fft=spec.n_fft, n_mels=spec.n_mels,
                              dtype=np.float32)
    starts, stops, weights = [], [], []
    for row in mel:
        nz = np.flatnonzero(row)
        a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        starts.append(a)
        stops.append(b)
        weights.append(row[a:b])
    offset = np.concatenate([[0], np.cumsum([len(w) for w in weights])]).astype(np.int64)

    chroma = np.stack([
        librosa.filters.chroma(sr=spec.sr, n_fft=spec.n_fft, tuning=float(t),
                               n_chroma=spec.n_chroma, dtype=np.float32)
        for t in TUNING_EDGES[:-1]
    ])
    dct = scipy.fft.dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0)[: spec.n_mfcc].T
    window = librosa.filters.get_window("hann", spec.n_fft, fftbins=True)
    freqs = np.fft.rfftfreq(spec.n_fft, 1.0 / spec.sr)
    return FilterBanks(
        window=window.astype(np.float32),
        freqs=freqs.astype(np.float32),
        mel_start=np.asarray(starts, np.int64),
        mel_stop=np.asarray(stops, np.int64),
        mel_offset=offset,
        mel_weights=np.concatenate(weights).astype(np.float32),
        chroma_t=np.ascontiguousarray(chroma.transpose(0, 2, 1), np.float32),
        dct=np.ascontiguousarray(dct, np.float32),
    )
