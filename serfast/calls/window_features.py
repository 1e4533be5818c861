"""Window features of one channel from frames computed once: a window costs a few sums.

A window's seed features (``serfast.features.cpu`` states them) are means over its STFT
frames plus the moments of its samples. When windows start on the channel's frame grid
(multiples of ``hop_length``), every frame of a window that lies wholly inside it is the
channel's frame at the same place: same samples, same Hann window. So
:class:`ChannelFrames` computes each channel frame once, when a window first needs it,
and keeps per frame what the means are made of:

* |X| (for chroma), mel power, dB mel, centroid, bandwidth, piptrack candidates;
* the frame's energy (RMS) and zero crossings;
* per ``hop``-sample block: the sums of y, y², y³, y⁴ (the waveform's moments).

A window of ``L`` samples has ``1 + L // hop`` frames; the first ``ceil(n_fft / 2 /
hop)`` and last few (two each at the defaults) overhang its edges, where a per-window STFT
pads with zeros (the ZCR with the edge samples). Those edge frames are computed afresh for
each window, as :func:`serfast.features.cpu.clip_features` computes them, so a window's
row is the per-window computation's up to the order of float sums (tested to 1e-4 of
each column's scale; bench/RESULTS.md). Then:

* mel, centroid, bandwidth, RMS, ZCR: sums over the window's frames;
* MFCC: the mean of the dB mel clamped at the window's max - ``top_db``;
* chroma: the tuning estimated per window from its frames' piptrack candidates
  (``librosa.estimate_tuning``), the chroma bank of that tuning, each frame normalised;
* moments: central moments from the window's power sums (blocks plus the partial block
  at its end).

Sets with prosody (``all``) add, per window:

* pitch and voice quality: the window's pYIN track from observations of the channel's
  pitch frames computed once (:class:`serfast.calls.window_prosody.ChannelPitch`) and its
  own Viterbi decode, so these columns equal the per-window computation's exactly; the
  voice measures from the window's samples, their pulses in the stretches of the window's
  own Praat voicing path over candidates of the channel's frames computed once
  (:class:`serfast.calls.window_prosody.ChannelVoicing`), exactly as per window too;
* spectral shape: what each frame gives alone (contrast bands' peaks and valleys,
  flatness, roll-off: ``shape.frame_shape``) kept per frame, and per window the dB
  clamping, onset strength and the frame statistics;
* loudness: the frame RMS summed from the window's samples as the per-window computation
  sums it.

A spec with the speaker embedding is refused: the channel's caller knows the speech each
window was placed over and embeds that (:mod:`serfast.calls.channel`). Windows too short
to have an inside frame are computed whole. Frames are kept only for the audio the caller
still holds (:meth:`ChannelFrames.trim`).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ..features import cpu_kernels, shape
from ..features.cpu import compute_batch
from ..features.filterbanks import filter_banks
from ..features.kernel_cache import njit
from ..features.librosa_constants import (AMIN, PIPTRACK_THRESHOLD, TINY32, TUNING_EDGES,
                                          VARIANCE_FLOOR, ZCR_THRESHOLD)
from ..features.spec import (BatchFeatures, FeatureSpec, inside_frame_range, n_frames,
                             pitch_bins)
from .window_prosody import ChannelProsody

__all__ = ["ChannelFrames", "inside_frames"]


def inside_frames(length: int, spec: FeatureSpec) -> tuple[int, int]:
    """Frames [t0, t1) of a ``length``-sample clip's centred STFT that lie wholly inside
    it (t1 <= t0: none)."""
    return inside_frame_range(length, spec.n_fft, spec.hop_length)


@njit(cache=True, fastmath=cpu_kernels._FAST)
def frame_time_sums(y, block0, hop, frame0, n_fft, powers, energy, crossings):
    """Time-domain sums of hop-long blocks and of n_fft-long frames of ``y``, all inside it.

    y : (n,) float32.  powers : (n_blocks, 4) float64 receives the sums of y, y², y³, y⁴
    of the blocks starting at samples ``block0 + k * hop``.  energy : (n_frames,) float64
    and crossings : (n_frames,) int64 receive the sum of squares and the zero crossings
    (as :func:`serfast.features.cpu_kernels.time_features` counts them: a frame's first
    sample is never a crossing) of the frames starting at samples ``frame0 + t * hop``.
    Frames made of whole blocks are summed from the blocks' sums, others sample by sample.
    A kernel of its own here, not in ``cpu_kernels``: only predict's channels use it, and
    the kernels the CLI warms are the extractor's.
    """
    n_blocks = powers.shape[0]
    cross_in = np.zeros(n_blocks, np.int64)  # crossings into each block's samples
    for blk in range(n_blocks):
        a = block0 + blk * hop
        seg = y[a:a + hop]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        for i in range(hop):  # branch-free loops over views: vectorised
            v = np.float64(seg[i])
            v2 = v * v
            s1 += v
            s2 += v2
            s3 += v2 * v
            s4 += v2 * v2
        powers[blk, 0] = s1
        powers[blk, 1] = s2
        powers[blk, 2] = s3
        powers[blk, 3] = s4
        cross_in[blk] = cpu_kernels.block_crossings(y, a, a + hop)
    per_frame = n_fft // hop
    first = (frame0 - block0) // hop
    aligned = (n_fft % hop == 0 and (frame0 - block0) % hop == 0 and first >= 0
               and first + energy.shape[0] - 1 + per_frame <= n_blocks)
    for t in range(energy.shape[0]):
        p0 = frame0 + t * hop
        e = 0.0
        c = 0
        if aligned:
            for blk in range(first + t, first + t + per_frame):
                e += powers[blk, 1]
                c += cross_in[blk]
            if p0 >= 1:  # the first sample of a frame is never a crossing
                c -= cpu_kernels.crossing(y, p0)
        else:
            for i in range(p0, p0 + n_fft):
                e += np.float64(y[i]) * y[i]
            for i in range(p0 + 1, p0 + n_fft):
                c += cpu_kernels.crossing(y, i)
        energy[t] = e
        crossings[t] = c


class _Frames:
    """Per-frame values of ``count`` frames (see the module doc), float32 unless said."""

    def __init__(self, count: int, spec: FeatureSpec, max_peaks: int):
        self.mag = np.zeros((count, spec.n_bins), np.float32)
        self.melpow = np.zeros((count, spec.n_mels), np.float32)
        self.db = np.zeros((count, spec.n_mels), np.float32)
        self.stats = np.zeros((count, 2), np.float64)  # centroid, bandwidth Hz
        self.energy = np.zeros(count, np.float64)  # sum of squares over the frame
        self.crossings = np.zeros(count, np.int64)
        self.peaks = np.zeros(count, np.int64)  # piptrack candidates of the frame
        self.pitch = np.zeros((count, max_peaks), np.float32)
        self.pitch_mag = np.zeros((count, max_peaks), np.float32)
        # what the shape tracks take from the frame alone (sets with prosody)
        self.shape = np.zeros((count, shape.FRAME_SHAPE_COLUMNS if spec.has_prosody else 0))

    def take(self, keep: slice) -> None:
        for name, value in vars(self).items():
            setattr(self, name, value[keep])

    def grow(self, count: int) -> None:
        """Room for ``count`` more frames, left unset: a frame is computed before it is read."""
        for name, value in vars(self).items():
            grown = np.empty((len(value) + count,) + value.shape[1:], value.dtype)
            grown[:len(value)] = value
            setattr(self, name, grown)


def _negative(y: np.ndarray) -> np.ndarray:
    """Samples on the negative side of zero for librosa's ZCR (float64 comparison)."""
    return y < np.float64(-ZCR_THRESHOLD)


class ChannelFrames:
    """Frames of one streamed channel, computed once each, and the windows' features.

    The caller holds the channel's audio as ``audio`` starting at sample ``base`` (a
    multiple of ``hop_length``) and passes it to :meth:`features`; :meth:`trim` drops
    what lies before a new base.
    """

    def __init__(self, spec: FeatureSpec):
        if spec.embedding:
            raise ValueError("ChannelFrames computes a spec without the speaker embedding; "
                             "its caller adds those columns")
        self.spec = spec
        self.banks = filter_banks(spec)
        self.hop, self.half = spec.hop_length, spec.n_fft // 2
        self.k_lo, self.k_hi = pitch_bins(spec)
        self.max_peaks = (self.k_hi - self.k_lo) // 2 + 1
        self.first = 0  # channel frame (= hop block) of row 0
        self.frames = _Frames(0, spec, self.max_peaks)
        self.done = np.zeros(0, bool)
        self.powers = np.zeros((0, 4), np.float64)  # per block: sums of y .. y^4
        self.prosody = ChannelProsody(spec) if spec.has_prosody else None

    def trim(self, base: int) -> None:
        """Forget frames and blocks before sample ``base`` (a multiple of hop)."""
        drop = base // self.hop - self.first
        if drop > 0:
            keep = slice(min(drop, len(self.done)), None)
            self.frames.take(keep)
            self.done, self.powers = self.done[keep], self.powers[keep]
            self.first += drop
        if self.prosody is not None:
            self.prosody.trim(base)

    def features(self, audio: np.ndarray, base: int, starts: list[int], ends: list[int],
                 with_frames: bool) -> BatchFeatures:
        """Features of the windows [starts[i], ends[i]) (samples; starts multiples of
        hop, at or after ``base``, ends at most ``base + len(audio)``).

        Returns values (n, spec.n_features) float32 and, when ``with_frames``, each
        window's frames: (n_frames, len(spec.frame_columns)) float32, clamped dB mel,
        MFCC and (sets with prosody) F0, voicing probability and RMS dB.
        """
        spec = self.spec
        self._reach(base + len(audio))
        values = np.empty((len(starts), spec.n_features), np.float32)
        frames: list = [None] * len(starts)
        clips = [audio[s - base:e - base] for s, e in zip(starts, ends)]
        grids = [inside_frames(len(y), spec) for y in clips]
        framed = [i for i, (t0, t1) in enumerate(grids) if t1 > t0]
        for i in framed:
            f0 = starts[i] // self.hop - self.first
            self._compute(audio, base, f0 + grids[i][0], f0 + grids[i][1])
        edges = self._edges([clips[i] for i in framed], [grids[i] for i in framed])
        spans = ([starts[i] for i in framed], [ends[i] for i in framed])
        pitch_voice = (self.prosody.pitch_voice(audio, base, *spans)
                       if self.prosody is not None else [None] * len(framed))
        for i, edge, known in zip(framed, edges, pitch_voice):
            t0, t1 = grids[i]
            f0 = starts[i] // self.hop - self.first
            logmel = self._window(clips[i], f0, t0, t1, edge, values[i],
                                  with_frames or known is not None)
            extra = [] if known is None else [
                self._prosody(clips[i], f0, t0, t1, edge, logmel, known, values[i])]
            if with_frames:
                frames[i] = np.concatenate([logmel, logmel @ self.banks.dct] + extra, axis=1)
        for i in sorted(set(range(len(starts))) - set(framed)):
            batch = compute_batch([clips[i]], spec, frames=with_frames)
            values[i] = batch.values[0]
            frames[i] = batch.frames[0] if with_frames else None
        return BatchFeatures(values, frames if with_frames else None)

    def _reach(self, end: int) -> None:
        """Make room for every frame and block up to sample ``end`` (at least twice the
        rows held, so that a channel's rows are copied a bounded number of times)."""
        rows = end // self.hop + 1 - self.first
        if rows > len(self.done):
            extra = max(rows, 2 * len(self.done)) - len(self.done)  # amortised: room doubles
            self.frames.grow(extra)
            self.done = np.concatenate([self.done, np.zeros(extra, bool)])
            self.powers = np.concatenate([self.powers, np.zeros((extra, 4), np.float64)])

    def _compute(self, audio: np.ndarray, base: int, a: int, b: int) -> None:
        """Compute rows [a, b) not yet done (frames wholly inside ``audio``; the blocks
        a - t0 .. b + t0 with them, which cover those frames)."""
        todo = np.flatnonzero(~self.done[a:b]) + a
        if len(todo) == 0:
            return
        a, b = int(todo[0]), int(todo[-1]) + 1  # frames are done in runs: one span
        hop, half = self.hop, self.half
        offset = (self.first - base // hop)  # row r is audio frame r + offset
        rows = np.arange(a, b)
        self._spectra([(audio, a + offset, b - a)], self.frames, rows)
        # the hop blocks these frames cover: their power sums, and the frames' energy and
        # zero crossings from them
        lo, hi = a - half // hop, b - 1 + half // hop
        frame_time_sums(audio, (lo + self.first) * hop - base, hop, (a + offset) * hop - half,
                        2 * half, self.powers[lo:hi], self.frames.energy[a:b],
                        self.frames.crossings[a:b])
        self.done[a:b] = True

    def _spectra(self, pieces: list[tuple[np.ndarray, int, int]], out: _Frames,
                 rows: np.ndarray) -> None:
        """STFT-derived values of the frames of ``pieces`` — (y, first, count): frames
        ``first ..`` of ``y``, zero outside it — in order, into ``out`` at ``rows``."""
        spec, banks = self.spec, self.banks
        count = sum(c for _, _, c in pieces)
        buf = np.empty((count, spec.n_fft), np.float32)
        at = 0
        for y, first, c in pieces:
            cpu_kernels.frame_clip(y, first, banks.window, self.hop, buf[at:at + c])
            at += c
        spectra = scipy.fft.rfft(buf, axis=1, workers=1)
        mag = np.empty((count, spec.n_bins), np.float32)
        melpow = np.empty((count, spec.n_mels), np.float32)
        stats = np.empty((count, 2), np.float64)
        pitches = np.empty(count * self.max_peaks, np.float32)
        pitch_mags = np.empty_like(pitches)
        found = cpu_kernels.spectrum_frames(
            spectra, banks.freqs, banks.mel_start, banks.mel_stop, banks.mel_offset,
            banks.mel_weights, self.k_lo, self.k_hi, spec.sr / spec.n_fft, mag, melpow,
            stats, pitches, pitch_mags, 0)
        peaks = self._peak_counts(mag)
        if peaks.sum() != found:
            raise AssertionError("piptrack candidates do not split into frames")
        db = np.maximum(melpow, np.float32(AMIN))
        np.log10(db, out=db)
        db *= np.float32(10.0)
        out.mag[rows], out.melpow[rows], out.db[rows], out.stats[rows] = mag, melpow, db, stats
        out.peaks[rows] = peaks
        if spec.has_prosody:
            out.shape[rows] = shape.frame_shape(mag[None], spec, np)[0]
        frame_of = np.repeat(np.arange(count), peaks)
        slot = np.arange(found) - np.repeat(np.cumsum(peaks) - peaks, peaks)
        out.pitch[rows[frame_of], slot] = pitches[:found]
        out.pitch_mag[rows[frame_of], slot] = pitch_mags[:found]

    def _peak_counts(self, mag: np.ndarray) -> np.ndarray:
        """piptrack candidates per frame: the same float32 test as the kernel's."""
        ref = np.float32(PIPTRACK_THRESHOLD) * mag.max(axis=1, keepdims=True)
        mid = mag[:, self.k_lo:self.k_hi]
        left = mag[:, self.k_lo - 1:self.k_hi - 1]
        right = mag[:, self.k_lo + 1:self.k_hi + 1]
        return ((mid > ref) & (mid > left) & (mid >= right)).sum(axis=1)

    def _edges(self, clips: list[np.ndarray], grids: list[tuple[int, int]]) -> list[_Frames]:
        """Each window's own frames [0, t0) and [t1, n) (overhanging its edges), all
        windows' in one FFT call."""
        pieces, edges = [], []
        for y, (t0, t1) in zip(clips, grids):
            count = n_frames(len(y), self.spec)
            pieces += [(y, 0, t0)] + ([(y, t1, count - t1)] if count > t1 else [])
            edges.append(np.r_[0:t0, t1:count])
        total = sum(len(e) for e in edges)
        every = _Frames(total, self.spec, self.max_peaks)
        if total:
            self._spectra(pieces, every, np.arange(total))
        out, at = [], 0
        for y, edge in zip(clips, edges):
            own = slice(at, at + len(edge))
            at += len(edge)
            frames = _Frames(0, self.spec, self.max_peaks)
            for name, value in vars(every).items():
                setattr(frames, name, value[own])
            for j, t in enumerate(edge):
                p0 = t * self.hop - self.half
                seg = y[max(p0, 0):min(p0 + 2 * self.half, len(y))]
                neg = _negative(seg)
                frames.energy[j] = np.square(seg, dtype=np.float64).sum()
                frames.crossings[j] = np.count_nonzero(neg[1:] != neg[:-1])
            out.append(frames)
        return out

    def _window(self, y: np.ndarray, f0: int, t0: int, t1: int, edge: _Frames,
                row: np.ndarray, with_frames: bool) -> np.ndarray:
        """One window's row (``row``, spec.n_features) from its inside frames (rows f0 + t0
        .. f0 + t1) and its own ``edge`` frames; returns its clamped dB frames when
        ``with_frames`` (else an empty array)."""
        spec, banks, cols = self.spec, self.banks, self.spec.slices
        inner = slice(f0 + t0, f0 + t1)
        fr = self.frames
        n = n_frames(len(y), spec)
        n_fft = spec.n_fft

        def total(name):
            value = getattr(fr, name)[inner]
            return (value.sum(axis=0, dtype=np.float64)
                    + getattr(edge, name).sum(axis=0, dtype=np.float64))

        rms = (np.sqrt(np.maximum(fr.energy[inner], 0.0) / n_fft).sum()
               + np.sqrt(np.maximum(edge.energy, 0.0) / n_fft).sum())
        row[cols["zcr"]] = total("crossings") / n_fft / n
        row[cols["rms"]] = rms / n
        row[cols["mel"]] = total("melpow") / n
        stats = total("stats") / n
        row[cols["centroid"]], row[cols["bandwidth"]] = stats[0], stats[1]
        # MFCC: dB clamped at the window's max - top_db
        floor = max(fr.db[inner].max(), edge.db.max()) - np.float32(spec.top_db)
        inner_db = np.maximum(fr.db[inner], floor)
        edge_db = np.maximum(edge.db, floor)
        db_mean = (inner_db.sum(axis=0, dtype=np.float64)
                   + edge_db.sum(axis=0, dtype=np.float64)) / n
        row[cols["mfcc"]] = db_mean @ banks.dct.astype(np.float64)
        row[cols["chroma"]] = self._chroma(fr, inner, edge, n)
        row[cols["moments"]] = self._moments(y, f0)
        if not with_frames:
            return np.zeros((0, spec.n_mels), np.float32)
        return np.concatenate([edge_db[:t0], inner_db, edge_db[t0:]])

    def _prosody(self, y: np.ndarray, f0: int, t0: int, t1: int, edge: _Frames,
                 logmel: np.ndarray, pitch_voice, row: np.ndarray) -> np.ndarray:
        """The prosody columns of one window (into ``row``) from its ``pitch_voice``
        (:meth:`ChannelProsody.pitch_voice`'s), its frames' shape values, its samples and
        its clamped dB frames ``logmel``; returns its F0, voicing probability and RMS dB
        frames ((n_frames, 3) float32)."""
        spec, at = self.spec, self.spec.slices
        inner = slice(f0 + t0, f0 + t1)
        row[at["pitch"].start:at["voice"].stop], pitch_frames = pitch_voice
        framed = np.concatenate([edge.shape[:t0], self.frames.shape[inner], edge.shape[t0:]])
        # the frame RMS as the per-window computation sums it: the loudness slopes count
        # every rise, so they follow its rounding in frames near the dB floor
        rms = shape.frame_rms(y[None], np.array([len(y)]), n_frames(len(y), spec), spec, np)
        values, rms_db = shape.spectral_values(framed[None], logmel[None], rms,
                                               self.banks.dct, spec, np)
        row[at["loudness"].start:at["mfcc_delta"].stop] = values[0]
        return np.concatenate([pitch_frames, rms_db[0, :, None].astype(np.float32)], axis=1)

    def _chroma(self, fr: _Frames, inner: slice, edge: _Frames, n: int) -> np.ndarray:
        """Mean normalised chroma with the window's own tuning estimate."""
        keep_in = np.arange(self.max_peaks) < fr.peaks[inner, None]
        keep_edge = np.arange(self.max_peaks) < edge.peaks[:, None]
        pitches = np.concatenate([fr.pitch[inner][keep_in], edge.pitch[keep_edge]])
        mags = np.concatenate([fr.pitch_mag[inner][keep_in], edge.pitch_mag[keep_edge]])
        tuning = cpu_kernels._tuning_index(pitches, mags, len(pitches), TUNING_EDGES,
                                           self.spec.n_chroma)
        bank = self.banks.chroma_t[tuning]
        out = np.zeros(self.spec.n_chroma, np.float64)
        for mag in (fr.mag[inner], edge.mag):
            raw = mag @ bank
            peak = np.abs(raw).max(axis=1, keepdims=True)
            peak[peak < TINY32] = np.float32(1.0)
            out += (raw / peak).sum(axis=0, dtype=np.float64)
        return out / n

    def _moments(self, y: np.ndarray, f0: int) -> np.ndarray:
        """Mean, variance, skew, Fisher kurtosis of the window's samples (biased, as
        scipy.stats; 0 skew and kurtosis for a constant window)."""
        whole = len(y) // self.hop
        tail = y[whole * self.hop:].astype(np.float64)
        t2 = tail * tail
        sums = (self.powers[f0:f0 + whole].sum(axis=0)
                + np.array([tail.sum(), t2.sum(), (t2 * tail).sum(), (t2 * t2).sum()]))
        s1, s2, s3, s4 = sums / len(y)
        mean = s1
        m2 = s2 - mean * mean
        m3 = s3 - 3 * mean * s2 + 2 * mean ** 3
        m4 = s4 - 4 * mean * s3 + 6 * mean * mean * s2 - 3 * mean ** 4
        if m2 <= VARIANCE_FLOOR:
            return np.array([mean, max(m2, 0.0), 0.0, 0.0])
        return np.array([mean, m2, m3 / m2 ** 1.5, m4 / (m2 * m2) - 3.0])
