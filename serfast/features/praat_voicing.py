"""Which stretches are voiced for jitter and shimmer: Praat's "To Pitch (ac)" decision.

Jitter and shimmer are measured on the glottal pulses of the voiced stretches, and eGeMAPS
and Praat take those stretches from Praat's autocorrelation pitch tracker (Boersma 1993),
not from pYIN, which also calls creak and breathy onsets voiced. This module follows that
tracker at its defaults for 60-500 Hz (3 periods of 60 Hz a window, 15 candidates, silence
threshold 0.03, voicing threshold 0.45, octave cost 0.01, octave-jump cost 0.35,
voiced/unvoiced cost 0.14) on the pitch tracker's frame grid (frame t centred on sample
``HOP_LENGTH * t``), so that a clip's frames are those of :mod:`serfast.features.pitch`:

- per frame: the 1100 samples (50 ms at 22,050 Hz) from 549 before the frame's centre to
  550 after it, minus their mean over one 60 Hz period both sides, under a Hann window; its
  normalised autocorrelation ``r`` (divided by the window's own), through a float32 FFT;
- candidates: the unvoiced one and up to 14 local maxima of ``r`` over lags 2-367 above
  half the voicing threshold, F0 and strength by a parabola (a strength above 1 is
  reflected to ``1 / strength``), the weakest by ``strength - 0.01 log2(60 / F0)`` dropped;
- the Viterbi path through the candidates of Praat's path finder: a voiced candidate scores
  ``strength - 0.01 log2(500 / F0)``, the unvoiced one ``0.45 + max(0, 2 - intensity /
  (0.03 / 1.45))`` with intensity the frame's peak over the clip's; changing voicing costs
  0.14 and an octave jump ``0.35 |log2(F1 / F2)|``, both scaled by ``0.01 s / hop``.

Frames whose window leaves the clip are unvoiced and outside the path, as Praat has no
frames there. Praat refines each candidate by sinc interpolation; the parabola here gives
the same voicing decisions as Praat's "To Pitch" on 98.8 % of the frames of 108 real clips
that lie within 2 ms of one of Praat's (bench/RESULTS.md).

A frame's peak and candidates depend on its own samples only (:func:`frame_peaks`,
:func:`frame_candidates`); the clip enters through its peak and its frame range
(:func:`decode_voicing`), so one channel's frames serve all its windows
(:class:`serfast.calls.window_prosody.ChannelVoicing`). :func:`praat_voicing` is the whole
clip's track.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import scipy.fft

from .kernel_cache import njit
from .pitch import FMAX, FMIN, HOP_LENGTH
from .pitch_kernels import power_in_place

__all__ = ["MAX_CANDIDATES", "praat_voicing", "fitting_frames", "clip_peak", "quiet_peak",
           "frame_peaks", "frame_candidates", "decode_voicing"]

_PERIODS_PER_WINDOW = 3.0
#: Candidates a frame keeps, the unvoiced one included.
MAX_CANDIDATES = 15
_SILENCE, _VOICING = 0.03, 0.45
_OCTAVE_COST, _OCTAVE_JUMP_COST, _VOICED_UNVOICED_COST = 0.01, 0.35, 0.14
#: Frames per FFT batch: bounds the memory of a long recording (about 20 KiB a frame).
_BATCH = 2048


@cache
def _geometry(sr: int):
    """Praat's sample counts at ``sr``: (half window, longest period, half longest period,
    FFT size, largest lag + 1). The FFT is the shortest fast one whose circular
    autocorrelation equals the linear one up to the largest lag read."""
    half_window = int(_PERIODS_PER_WINDOW / FMIN * sr) // 2 - 1
    period = int(sr / FMIN)
    max_lag = min(2 * half_window // int(_PERIODS_PER_WINDOW) + 2, 2 * half_window)
    n_fft = scipy.fft.next_fast_len(2 * half_window + max_lag + 1, real=True)
    return half_window, period, period // 2 + 1, n_fft, max_lag


@cache
def _window(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Praat's Hann window ((2 half window,) float64) and its normalised autocorrelation
    over lags 0..max_lag."""
    half_window, _, _, n_fft, max_lag = _geometry(sr)
    j = np.arange(1, 2 * half_window + 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * j / (2 * half_window + 1))
    window_r = scipy.fft.irfft(np.abs(scipy.fft.rfft(window, n_fft)) ** 2, n_fft)
    return window, window_r[:max_lag + 1] / window_r[0]


@njit(cache=True)
def _frames(y, centres, period, half_window, half_period, window, frames, peaks):
    """Each centre's window of ``y`` minus its local mean (one longest period both sides),
    under ``window``: its largest |value| within half a longest period of the centre into
    ``peaks`` (B,) and, unless ``frames`` has no rows, the values into the float32 rows of
    ``frames`` (B, n_fft; zero-padded). Every frame depends on its own samples only."""
    write = frames.shape[0] > 0
    for k in range(centres.shape[0]):
        c = centres[k]
        total = 0.0
        for i in range(c + 1 - period, c + period + 1):
            total += y[i]
        mean = total / (2 * period)
        peak = 0.0
        for j in range(0 if write else half_window - half_period,
                       2 * half_window if write else half_window + half_period):
            v = (np.float64(y[c + 1 - half_window + j]) - mean) * window[j]
            if write:
                frames[k, j] = v
            if half_window - half_period <= j < half_window + half_period:
                peak = max(peak, abs(v))
        if write:
            frames[k, 2 * half_window:] = 0.0
        peaks[k] = peak


@njit(cache=True)
def _candidates(ac, window_r, sr, max_lag, index, freqs, strengths, counts):
    """Candidates of frames ``index`` (B,) from their autocorrelations ``ac`` (B, n_fft),
    normalised by lag 0 and by ``window_r``, written after the unvoiced one (index 0, F0 0)
    into rows ``index`` of ``freqs`` / ``strengths`` (T, :data:`MAX_CANDIDATES`), with their
    number, the unvoiced one included, in ``counts`` (T,)."""
    r = np.empty(max_lag + 1)
    for k in range(ac.shape[0]):
        n = 1
        row = index[k]
        if not ac[k, 0] > 0.0:
            continue
        for i in range(max_lag + 1):
            r[i] = ac[k, i] / (ac[k, 0] * window_r[i])
        for i in range(2, max_lag):
            if not (r[i] > 0.5 * _VOICING and r[i] > r[i - 1]
                    and r[i] >= r[i + 1]):
                continue
            dr = 0.5 * (r[i + 1] - r[i - 1])
            d2r = 2.0 * r[i] - r[i - 1] - r[i + 1]
            f = sr / (i + dr / d2r)
            s = r[i] + 0.5 * dr * dr / d2r
            if s > 1.0:
                s = 1.0 / s
            if n < MAX_CANDIDATES:
                place = n
                n += 1
            else:
                weakest = 2.0
                place = 0
                for j in range(1, n):
                    local = strengths[row, j] - _OCTAVE_COST * math.log2(FMIN / freqs[row, j])
                    if local < weakest:
                        weakest = local
                        place = j
                if s - _OCTAVE_COST * math.log2(FMIN / f) <= weakest:
                    continue
            freqs[row, place] = f
            strengths[row, place] = s
        counts[row] = n


def _transition_costs(sr: int) -> tuple[float, float]:
    """Praat's octave-jump and voiced/unvoiced costs on the pitch grid: scaled by
    ``0.01 s / hop``, as its path finder scales them to its time step."""
    scale = 0.01 / (HOP_LENGTH / sr)
    return _OCTAVE_JUMP_COST * scale, _VOICED_UNVOICED_COST * scale


@njit(cache=True)
def _path(freqs, strengths, counts, intensity, jump, switch, f0, voiced):
    """Praat's path finder over frames ``(T, 15)`` of candidates (index 0 unvoiced, F0 0),
    with transition costs ``jump`` (per octave) and ``switch``: writes the chosen F0 (Hz, 0
    where unvoiced) and voicing into ``f0`` / ``voiced`` (T,)."""
    n_frames = counts.shape[0]
    delta = np.full((n_frames, MAX_CANDIDATES), -np.inf)
    back = np.zeros((n_frames, MAX_CANDIDATES), np.int64)
    is_voiced = np.zeros((n_frames, MAX_CANDIDATES), np.bool_)
    for t in range(n_frames):
        unvoiced = _VOICING + max(0.0, 2.0 - intensity[t] / (_SILENCE / (1.0 + _VOICING)))
        for c in range(counts[t]):
            f = freqs[t, c]
            is_voiced[t, c] = 0.0 < f < FMAX
            if is_voiced[t, c]:
                delta[t, c] = strengths[t, c] - _OCTAVE_COST * math.log2(FMAX / f)
            else:
                delta[t, c] = unvoiced
    for t in range(1, n_frames):
        for c2 in range(counts[t]):
            best = -np.inf
            place = 0
            for c1 in range(counts[t - 1]):
                if is_voiced[t, c2] and is_voiced[t - 1, c1]:
                    cost = jump * abs(math.log2(freqs[t - 1, c1] / freqs[t, c2]))
                elif is_voiced[t, c2] or is_voiced[t - 1, c1]:
                    cost = switch
                else:
                    cost = 0.0
                value = delta[t - 1, c1] - cost
                if value > best:
                    best = value
                    place = c1
            delta[t, c2] += best
            back[t, c2] = place
    c = 0
    for j in range(1, counts[n_frames - 1]):
        if delta[n_frames - 1, j] > delta[n_frames - 1, c]:
            c = j
    for t in range(n_frames - 1, -1, -1):
        voiced[t] = is_voiced[t, c]
        f0[t] = freqs[t, c] if voiced[t] else 0.0
        c = back[t, c]


def fitting_frames(length: int, sr: int) -> tuple[int, int]:
    """Frames [lo, hi) of the pitch grid of a ``length``-sample clip whose window lies
    inside it (hi <= lo: none)."""
    half_window = _geometry(sr)[0]
    lo = -(-(half_window - 1) // HOP_LENGTH)
    hi = (length - half_window - 1) // HOP_LENGTH + 1 if length > half_window else 0
    return lo, max(hi, lo)


def clip_peak(y: np.ndarray) -> float:
    """Praat's global peak: the largest |y - mean(y)| (0 for an empty clip)."""
    return float(np.abs(y - y.mean(dtype=np.float64)).max()) if len(y) else 0.0


def quiet_peak(global_peak: float, sr: int) -> float:
    """The frame peak below which a frame is unvoiced on every best path: its unvoiced
    score beats any voiced one (at most 1) by more than the two voicing changes it could
    save. Such frames need no candidates."""
    switch = _transition_costs(sr)[1]
    return (1.0 + _VOICING - 2.0 * switch) * _SILENCE / (1.0 + _VOICING) * global_peak


def frame_peaks(y: np.ndarray, sr: int, centres: np.ndarray) -> np.ndarray:
    """Windowed peak of the frames centred on samples ``centres`` (B,) int64 of ``y``
    (each window inside ``y``): (B,) float64."""
    half_window, period, half_period, n_fft, _ = _geometry(sr)
    peaks = np.zeros(len(centres))
    _frames(y, centres, period, half_window, half_period, _window(sr)[0],
            np.empty((0, n_fft), np.float32), peaks)
    return peaks


def frame_candidates(y: np.ndarray, sr: int, centres: np.ndarray):
    """Candidates of the frames centred on samples ``centres`` (B,) int64 of ``y`` (each
    window inside ``y``): ``(freqs, strengths)`` (B, 15) float64, Hz and strength, index 0
    the unvoiced candidate (F0 0), and ``counts`` (B,) int64, how many of each row are set.
    Memory is bounded: frames are transformed :data:`_BATCH` at a time."""
    half_window, period, half_period, n_fft, max_lag = _geometry(sr)
    window, window_r = _window(sr)
    freqs = np.zeros((len(centres), MAX_CANDIDATES))
    strengths = np.zeros((len(centres), MAX_CANDIDATES))
    counts = np.ones(len(centres), np.int64)
    frames = np.empty((min(_BATCH, len(centres)), n_fft), np.float32)
    peaks = np.zeros(len(frames))
    for start in range(0, len(centres), _BATCH):
        b = min(_BATCH, len(centres) - start)
        _frames(y, centres[start:start + b], period, half_window, half_period, window,
                frames[:b], peaks[:b])
        spectrum = scipy.fft.rfft(frames[:b], axis=1)
        power_in_place(spectrum)
        ac = scipy.fft.irfft(spectrum, n_fft, axis=1)
        _candidates(ac, window_r, sr, max_lag, np.arange(start, start + b), freqs,
                    strengths, counts)
    return freqs, strengths, counts


def decode_voicing(freqs, strengths, counts, peaks, global_peak: float, sr: int,
                   n_frames: int, lo: int):
    """A clip's track from its fitting frames ``lo .. lo + T - 1``: Praat's path through
    their candidates (:func:`frame_candidates`, read only where ``peaks`` (T,) reach
    :func:`quiet_peak`) given the clip's ``global_peak``, the other frames unvoiced:
    ``(f0 (n_frames,) float64 Hz, 0 where unvoiced; voiced (n_frames,) bool)``."""
    f0 = np.zeros(n_frames)
    voiced = np.zeros(n_frames, np.bool_)
    if len(peaks) and global_peak > 0.0:
        counts = np.where(peaks >= quiet_peak(global_peak, sr), counts, 1)
        _path(freqs, strengths, counts, np.minimum(peaks / global_peak, 1.0),
              *_transition_costs(sr), f0[lo:lo + len(peaks)], voiced[lo:lo + len(peaks)])
    return f0, voiced


def praat_voicing(y: np.ndarray, sr: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Praat's F0 (Hz, 0 where unvoiced) and voicing of ``y`` on the pitch frame grid
    (module docstring): ``(f0 (n_frames,) float64, voiced (n_frames,) bool)``.

    y : (n,) float32 at ``sr``.  n_frames : frames of the grid, ``1 + n // HOP_LENGTH``.
    """
    lo, hi = fitting_frames(len(y), sr)
    global_peak = clip_peak(y)
    if hi <= lo or global_peak == 0.0:
        return np.zeros(n_frames), np.zeros(n_frames, np.bool_)
    centres = np.arange(lo, hi) * HOP_LENGTH
    peaks = frame_peaks(y, sr, centres)
    freqs = np.zeros((hi - lo, MAX_CANDIDATES))
    strengths = np.zeros((hi - lo, MAX_CANDIDATES))
    counts = np.ones(hi - lo, np.int64)
    loud = np.flatnonzero(peaks >= quiet_peak(global_peak, sr))
    freqs[loud], strengths[loud], counts[loud] = frame_candidates(y, sr, centres[loud])
    return decode_voicing(freqs, strengths, counts, peaks, global_peak, sr, n_frames, lo)
