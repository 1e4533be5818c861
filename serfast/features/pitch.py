"""F0 and voicing: pYIN and YIN equal to librosa's, and their per-clip statistics.

Reference definition (librosa 0.11, per clip ``y`` at ``sr``)::

    f0, voiced_flag, voiced_prob = pyin(y, fmin=60, fmax=500, sr=sr,
                                        frame_length=1024, hop_length=256)
    f0_yin = yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)

(every other argument at its default). 60-500 Hz spans adult and child speech, shouting
included; a 1024-sample frame (46 ms at 22,050 Hz) holds two periods of 60 Hz, and the
256-sample hop (11.6 ms) resolves syllable-rate pitch movement. A clip of n samples has
``1 + n // 256`` pitch frames, frame t centred on sample ``256 t``: two per frame of the
seed STFT (hop 512), whose frame t is pitch frame 2t.

:func:`pitch_stats` reduces a track to the clip's :data:`PITCH_COLUMNS`; the F0 columns use
the voiced frames only:

==================  =====================================================================
f0_mean, f0_std     mean and (population) standard deviation of F0, Hz
f0_p10/p50/p90      10th, 50th, 90th percentile of F0 (linear interpolation), Hz
f0_range_st         ``12 * log2(p90 / p10)``, semitones
f0_slope_st_s       least-squares slope of F0 in semitones against time, semitones/s
f0_delta_abs_st     mean ``|F0[t] - F0[t-1]|`` in semitones over pairs of consecutive
                    voiced frames, semitones/frame
voiced_fraction     voiced frames / frames
voicing_prob_mean   mean pYIN voicing probability over all frames
==================  =====================================================================

A clip with no voiced frame stores 0 in every F0 column (and voiced_fraction 0): the store
stays finite and ``voiced_fraction`` says the F0 columns are empty. One voiced frame gives
std, range, slope and delta 0; slope needs two voiced frames and delta one voiced pair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import scipy.fft

from . import pitch_kernels
from .table_cache import cached_tables

__all__ = ["FMIN", "FMAX", "FRAME_LENGTH", "HOP_LENGTH", "PITCH_COLUMNS", "Observations",
           "decode", "observe", "pitch_track", "yin_track", "pitch_tracks", "pitch_stats",
           "pitch_row", "pitch_rows"]

#: pYIN/YIN search range in Hz.
FMIN, FMAX = 60.0, 500.0
#: Frame and hop of the pitch tracker, samples.
FRAME_LENGTH, HOP_LENGTH = 1024, 256
#: librosa's ``yin`` trough threshold and ``pyin`` defaults.
_TROUGH_THRESHOLD = 0.1
_N_THRESHOLDS = 100
_BETA = (2, 18)
_BOLTZMANN = 2
_RESOLUTION = 0.1
_MAX_TRANSITION_RATE = 35.92
_SWITCH_PROB = 0.01
_NO_TROUGH_PROB = 0.01
#: Frames per autocorrelation batch (bounds the FFT buffers and observations to ~30 MB).
_CHUNK = 1024
#: Frames whose Viterbi values are held at once (~6 MB at 22,050 Hz): a clip of up to
#: 11.9 s decodes in one forward pass; a longer one runs a second pass (see
#: ``pitch_kernels.viterbi_states``).
_SEGMENT = 1024

PITCH_COLUMNS = ["f0_mean", "f0_std", "f0_p10", "f0_p50", "f0_p90", "f0_range_st",
                 "f0_slope_st_s", "f0_delta_abs_st", "voiced_fraction", "voicing_prob_mean"]


@dataclass(frozen=True)
class _Model:
    """pYIN's tables for one sample rate (librosa's ``pyin`` set-up, computed once)."""

    sr: int
    min_period: int
    max_period: int
    n_fft: int
    thresholds: np.ndarray
    beta_probs: np.ndarray
    boltzmann_pmf: np.ndarray
    n_bins: int
    bins_per_octave: int
    freqs: np.ndarray
    log_trans_band: np.ndarray
    log_trans_src: np.ndarray
    log_trans_off: float
    log_p_init: float


#: The fields of :class:`_Model` that are numbers, not tables.
_INTS = ("sr", "min_period", "max_period", "n_fft", "n_bins", "bins_per_octave")
_FLOATS = ("log_trans_off", "log_p_init")


@cache
def _model(sr: int) -> _Model:
    """The tables of ``librosa.pyin(fmin=FMIN, fmax=FMAX, frame_length=FRAME_LENGTH,
    hop_length=HOP_LENGTH)`` at ``sr``, built with librosa's and SciPy's own functions
    once per user (:func:`serfast.features.table_cache.cached_tables`)."""
    if not FMAX <= sr / 2 or sr / FMIN >= FRAME_LENGTH - 1:
        raise ValueError(f"sample rate {sr} Hz cannot hold pitch {FMIN:g}-{FMAX:g} Hz "
                         f"in {FRAME_LENGTH}-sample frames")
    key = [sr, FMIN, FMAX, FRAME_LENGTH, HOP_LENGTH, _N_THRESHOLDS, _BETA, _BOLTZMANN,
           _RESOLUTION, _MAX_TRANSITION_RATE, _SWITCH_PROB, 1]
    tables = cached_tables("pyin", key, lambda: asdict(_build_model(sr)))
    return _Model(**{name: int(value) if name in _INTS else
                     float(value) if name in _FLOATS else value
                     for name, value in tables.items()})


def _build_model(sr: int) -> _Model:
    """:func:`_model`'s tables, built."""
    import librosa
    import scipy.stats

    min_period = int(np.floor(sr / FMAX))
    max_period = min(int(np.ceil(sr / FMIN)), FRAME_LENGTH - 1)
    n_lags = max_period - min_period + 1
    thresholds = np.linspace(0, 1, _N_THRESHOLDS + 1)
    beta_probs = np.diff(scipy.stats.beta.cdf(thresholds, *_BETA))
    pmf = np.zeros((n_lags + 1, n_lags))
    for n in range(1, n_lags + 1):
        pmf[n, :n] = scipy.stats.boltzmann.pmf(np.arange(n), _BOLTZMANN, n)
    per_semitone = int(np.ceil(1.0 / _RESOLUTION))
    n_bins = int(np.floor(12 * per_semitone * np.log2(FMAX / FMIN))) + 1
    max_semitones = round(_MAX_TRANSITION_RATE * 12 * HOP_LENGTH / sr)
    width = max_semitones * per_semitone + 1
    local = librosa.sequence.transition_local(n_bins, width, window="triangle", wrap=False)
    switch = librosa.sequence.transition_loop(2, 1 - _SWITCH_PROB)
    transition = np.kron(switch, local)
    tiny = np.finfo(np.float64).tiny
    log_trans = np.log(transition + tiny)
    half = width // 2
    band = np.full((2, 2, 2 * half + 1, n_bins), np.nan)
    by_source = np.full((2, 2, n_bins, 2 * half + 1), np.nan)
    offband = np.ones_like(log_trans, bool)
    for gk in range(2):
        for gj in range(2):
            for b in range(n_bins):
                lo, hi = max(b - half, 0), min(b + half + 1, n_bins)
                band[gk, gj, lo - b + half:hi - b + half, b] = \
                    log_trans[gk * n_bins + lo:gk * n_bins + hi, gj * n_bins + b]
                by_source[gk, gj, b, lo - b + half:hi - b + half] = \
                    log_trans[gk * n_bins + b, gj * n_bins + lo:gj * n_bins + hi]
                offband[gk * n_bins + lo:gk * n_bins + hi, gj * n_bins + b] = False
    log_off = float(np.log(tiny))
    assert np.all(log_trans[offband] == log_off)
    for table in (band, by_source):
        table[np.isnan(table)] = log_off  # beyond the first or last bin
    return _Model(
        sr=sr, min_period=min_period, max_period=max_period,
        n_fft=scipy.fft.next_fast_len(2 * FRAME_LENGTH - 1, real=True),  # as librosa
        thresholds=thresholds, beta_probs=beta_probs, boltzmann_pmf=pmf, n_bins=n_bins,
        bins_per_octave=12 * per_semitone,
        freqs=FMIN * 2 ** (np.arange(n_bins) / (12 * per_semitone)),
        log_trans_band=band, log_trans_src=by_source, log_trans_off=log_off,
        log_p_init=float(np.log(1.0 / (2 * n_bins) + tiny)))


@dataclass
class Observations:
    """Per-frame observations of :func:`observe`, T frames.

    yin_f0 : (T,) float64 Hz, ``librosa.yin``'s F0.  voiced_prob : (T,) float64.
    n_cand : (T,) int64; cand_bin (T, K) int32 and cand_logp (T, K) float64: frame t's
    ``n_cand[t]`` voiced pitch bins with a non-zero observation probability, increasing,
    and their ``log(p + tiny)`` in its first ``n_cand[t]`` entries.
    """

    yin_f0: np.ndarray
    voiced_prob: np.ndarray
    n_cand: np.ndarray
    cand_bin: np.ndarray
    cand_logp: np.ndarray

    @staticmethod
    def empty(count: int, sr: int) -> Observations:
        """Room for ``count`` frames at ``sr`` (zeros: frames without a candidate)."""
        model = _model(sr)
        # a frame's troughs are local minima of its lags: every other lag at most
        most = (model.max_period - model.min_period + 1) // 2 + 2
        return Observations(np.zeros(count), np.zeros(count), np.zeros(count, np.int64),
                            np.zeros((count, most), np.int32), np.zeros((count, most)))

    def take(self, index) -> Observations:
        """The frames ``index`` (a slice or an index array)."""
        return Observations(*(value[index] for value in vars(self).values()))

    def flat(self):
        """``(yin_f0, voiced_prob, n_cand, cand_bin, cand_logp)`` with only the candidates
        kept, one after another (frame t's at ``sum(n_cand[:t])``)."""
        kept = np.arange(self.cand_bin.shape[1]) < self.n_cand[:, None]
        return (self.yin_f0, self.voiced_prob, self.n_cand, self.cand_bin[kept],
                self.cand_logp[kept])

    @staticmethod
    def join(parts: list[Observations]) -> Observations:
        """The frames of ``parts`` one after another."""
        return Observations(*(np.concatenate([vars(p)[name] for p in parts])
                              for name in vars(parts[0])))


def observe(pieces, sr: int) -> Observations:
    """pYIN's and YIN's per-frame observations of the frames of ``pieces``, in order:
    each piece ``(y, first, count)`` stands for frames ``first .. first + count - 1`` of a
    clip ``y`` ((n,) float32) padded as :func:`pitch_track` pads it, so a frame's
    observations are the same whichever clip around it is framed. Memory: about 2 KB a
    frame; callers pass at most a few thousand frames at once."""
    model = _model(sr)
    count = sum(c for _, _, c in pieces)
    out = Observations.empty(count, sr)
    # frames zero-padded to the FFT size in place, so the FFT reads them without a copy
    padded = np.zeros((count, model.n_fft), np.float32)
    frames = padded[:, :FRAME_LENGTH]
    at = 0
    for y, first, c in pieces:
        pitch_kernels.frame_padded(np.ascontiguousarray(y, dtype=np.float32), first,
                                   FRAME_LENGTH, HOP_LENGTH, frames[at:at + c])
        at += c
    spectrum = scipy.fft.rfft(padded, axis=1, workers=1)
    pitch_kernels.power_in_place(spectrum)  # the power spectrum, still complex: no copy
    acf = scipy.fft.irfft(spectrum, n=model.n_fft, axis=1, workers=1)[:, :model.max_period + 1]
    pitch_kernels.yin_frames(
        frames, acf, model.sr, FMIN, model.min_period, model.max_period,
        _TROUGH_THRESHOLD, model.thresholds, model.beta_probs, model.boltzmann_pmf,
        _NO_TROUGH_PROB, model.n_bins, model.bins_per_octave, out.yin_f0, out.voiced_prob,
        out.cand_bin, out.cand_logp, out.n_cand)
    return out


def _observations(y: np.ndarray, sr: int):
    """:func:`observe` of every frame of a clip, ``_CHUNK`` frames at a time, with the
    candidates kept flat (about 20 bytes a frame): ``(yin_f0, voiced_prob, n_cand,
    cand_bin, cand_logp)``, frame t's candidates at ``sum(n_cand[:t])`` of the last two."""
    count = 1 + len(y) // HOP_LENGTH
    parts = [observe([(y, t0, min(t0 + _CHUNK, count) - t0)], sr).flat()
             for t0 in range(0, count, _CHUNK)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def decode(obs: Observations, sr: int):
    """pYIN's track from a clip's observations (its frames in order): ``(f0, voiced_flag,
    voiced_prob, yin_f0)`` as :func:`pitch_tracks` returns them."""
    return _decode(*obs.flat(), sr)


def _decode(yin_f0, voiced_prob, n_cand, cand_bin, cand_logp, sr: int):
    """:func:`decode` of observations in :func:`_observations`' flat form."""
    model = _model(sr)
    offsets = np.concatenate([[0], np.cumsum(n_cand)])
    states = np.empty(len(voiced_prob), np.int64)
    pitch_kernels.viterbi_states(model.log_trans_band, model.log_trans_src,
                                 model.log_trans_off, model.log_p_init, model.n_bins,
                                 offsets, cand_bin, cand_logp, voiced_prob, _SEGMENT, states)
    voiced = states < model.n_bins
    f0 = model.freqs[states % model.n_bins]
    f0[~voiced] = np.nan
    return f0, voiced, voiced_prob, yin_f0


def yin_track(y: np.ndarray, sr: int) -> np.ndarray:
    """YIN F0 per frame, Hz: ``librosa.yin(y, fmin=FMIN, fmax=FMAX, sr=sr,
    frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)``.

    y : (n,) float32, n >= 1.  Returns (1 + n // HOP_LENGTH,) float64.
    """
    return _observations(y, sr)[0]


def pitch_track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN per frame: ``librosa.pyin(y, fmin=FMIN, fmax=FMAX, sr=sr,
    frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)``.

    y : (n,) float32, n >= 1.  Returns ``f0`` (T,) float64 Hz, NaN where unvoiced;
    ``voiced_flag`` (T,) bool; ``voiced_prob`` (T,) float64 in [0, 1]; T = 1 + n // hop.
    """
    return pitch_tracks(y, sr)[:3]


def pitch_tracks(y: np.ndarray, sr: int):
    """:func:`pitch_track` and :func:`yin_track` from one pass over the clip:
    ``(f0, voiced_flag, voiced_prob, yin_f0)``."""
    return _decode(*_observations(y, sr), sr)


def pitch_stats(f0: np.ndarray, voiced_flag: np.ndarray, voiced_prob: np.ndarray,
                sr: int, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """The :data:`PITCH_COLUMNS` of one pYIN track (module docstring), float32.

    f0 : (T,) Hz (unvoiced entries ignored).  voiced_flag : (T,) bool.
    voiced_prob : (T,) in [0, 1].  sr, hop_length : the track's frame rate.
    """
    out = np.zeros(len(PITCH_COLUMNS), np.float32)
    n = len(voiced_flag)
    if n == 0:
        return out
    out[8] = np.count_nonzero(voiced_flag) / n
    out[9] = np.mean(voiced_prob)
    index = np.flatnonzero(voiced_flag)
    if len(index) == 0:
        return out
    hz = np.asarray(f0, np.float64)[index]
    st = 12 * np.log2(hz)
    p10, p50, p90 = np.percentile(hz, [10, 50, 90])
    out[:6] = hz.mean(), hz.std(), p10, p50, p90, 12 * np.log2(p90 / p10)
    if len(index) > 1:
        seconds = index * (hop_length / sr)
        dt = seconds - seconds.mean()
        out[6] = np.dot(dt, st - st.mean()) / np.dot(dt, dt)
    pairs = np.diff(index) == 1
    if pairs.any():
        out[7] = np.abs(np.diff(st)[pairs]).mean()
    return out


def pitch_row(y: np.ndarray, sr: int) -> np.ndarray:
    """:data:`PITCH_COLUMNS` of one clip: (len(PITCH_COLUMNS),) float32, always finite.

    y : (n,) float32, n >= 1, mono at ``sr``.
    """
    f0, voiced, prob = pitch_track(y, sr)
    return pitch_stats(f0, voiced, prob, sr)


def pitch_rows(clips, sr: int) -> np.ndarray:
    """:func:`pitch_row` of each clip in ``clips`` (iterable of (n_i,) float32):
    (n_clips, len(PITCH_COLUMNS)) float32."""
    return np.array([pitch_row(y, sr) for y in clips], np.float32).reshape(-1, len(PITCH_COLUMNS))
