"""pYIN observations and Praat voicing candidates of a channel's pitch frames, computed
once for all its windows.

A pitch frame's observations (YIN's F0, pYIN's voicing probability and candidates:
:func:`serfast.features.pitch.observe`) depend only on its 1024 samples. Windows start on
the channel's frame grid (multiples of the STFT hop, 512 samples = two pitch hops), so
every pitch frame that lies wholly inside a window is the channel's pitch frame at the
same place: :class:`ChannelPitch` observes each once, when a window first needs it. The
two or three frames at each edge of a window, which a per-window computation pads with
zeros, are observed for each window, and the Viterbi decode, which depends on the whole
window, runs per window: a window's track is the per-window computation's.

Praat's voicing candidates (:mod:`serfast.features.praat_voicing`) of a frame likewise
depend only on its own window of samples: :class:`ChannelVoicing` keeps each frame's peak
and candidates, computing the candidates only for frames loud enough in some window to be
read, and runs each window's path with the window's own peak.

:class:`ChannelProsody` holds both and gives each window's pitch and voice columns.
"""

from __future__ import annotations

import numpy as np

from ..features import praat_voicing as voicing
from ..features import shape
from ..features.pitch import FRAME_LENGTH, HOP_LENGTH, Observations, decode, observe
from ..features.spec import FeatureSpec, inside_frame_range

__all__ = ["ChannelPitch", "ChannelProsody", "ChannelVoicing", "inside_pitch_frames"]


def inside_pitch_frames(length: int) -> tuple[int, int]:
    """Pitch frames [p0, p1) of a ``length``-sample clip that lie wholly inside it
    (p1 <= p0: none)."""
    return inside_frame_range(length, FRAME_LENGTH, HOP_LENGTH)


class ChannelPitch:
    """Observations of one streamed channel's pitch frames and its windows' tracks.

    As :class:`serfast.calls.window_features.ChannelFrames`: the caller holds the
    channel's audio from sample ``base`` (a multiple of ``HOP_LENGTH``) and drops what lies
    before a new base with :meth:`trim`.
    """

    def __init__(self, sr: int):
        self.sr = sr
        self.first = 0  # channel pitch frame of row 0
        self.obs = Observations.empty(0, sr)
        self.done = np.zeros(0, bool)

    def trim(self, base: int) -> None:
        """Forget the frames before sample ``base`` (a multiple of HOP_LENGTH)."""
        drop = base // HOP_LENGTH - self.first
        if drop > 0:
            keep = slice(min(drop, len(self.done)), None)
            self.obs, self.done = self.obs.take(keep), self.done[keep]
            self.first += drop

    def tracks(self, audio: np.ndarray, base: int, starts: list[int], ends: list[int]):
        """pYIN tracks of the windows [starts[i], ends[i]) (samples; starts multiples of
        HOP_LENGTH at or after ``base``, ends at most ``base + len(audio)``): for each,
        ``(f0, voiced_flag, voiced_prob, yin_f0)`` as ``pitch.pitch_tracks`` of the
        window's samples gives them."""
        rows = (base + len(audio)) // HOP_LENGTH + 1 - self.first
        if rows > len(self.done):
            extra = rows - len(self.done)
            self.obs = Observations.join([self.obs, Observations.empty(extra, self.sr)])
            self.done = np.concatenate([self.done, np.zeros(extra, bool)])
        clips = [audio[s - base:e - base] for s, e in zip(starts, ends)]
        grids = [inside_pitch_frames(len(y)) for y in clips]
        counts = [1 + len(y) // HOP_LENGTH for y in clips]
        firsts = [s // HOP_LENGTH - self.first for s in starts]
        self._observe(audio, base, [(f + p0, f + p1) for f, (p0, p1) in zip(firsts, grids)
                                    if p1 > p0])
        pieces = []
        for y, count, (p0, p1) in zip(clips, counts, grids):
            pieces += [(y, 0, p0), (y, p1, count - p1)] if p1 > p0 else [(y, 0, count)]
        edges = observe(pieces, self.sr)
        out, at = [], 0
        for count, f, (p0, p1) in zip(counts, firsts, grids):
            if p1 > p0:
                parts = [edges.take(slice(at, at + p0)), self.obs.take(slice(f + p0, f + p1)),
                         edges.take(slice(at + p0, at + p0 + count - p1))]
                at += p0 + count - p1
            else:
                parts = [edges.take(slice(at, at + count))]
                at += count
            out.append(decode(Observations.join(parts), self.sr))
        return out

    def _observe(self, audio: np.ndarray, base: int, spans: list[tuple[int, int]]) -> None:
        """Observe the rows of ``spans`` not yet done, all in one call."""
        todo = np.zeros(len(self.done), bool)
        for a, b in spans:
            todo[a:b] = True
        todo &= ~self.done
        rows = np.flatnonzero(todo)
        if len(rows) == 0:
            return
        breaks = np.flatnonzero(np.diff(rows) > 1) + 1
        offset = self.first - base // HOP_LENGTH  # row r is frame r + offset of audio
        pieces = [(audio, int(run[0]) + offset, len(run)) for run in np.split(rows, breaks)]
        obs = observe(pieces, self.sr)
        for name, value in vars(obs).items():
            vars(self.obs)[name][rows] = value
        self.done[rows] = True


class ChannelVoicing:
    """Praat voicing candidates of one streamed channel's pitch frames and its windows'
    voicing tracks; held and trimmed as :class:`ChannelPitch`."""

    def __init__(self, sr: int):
        self.sr = sr
        self.first = 0  # channel pitch frame of row 0
        self.peaks = np.full(0, np.nan)  # NaN: not framed yet
        self.freqs = np.zeros((0, voicing.MAX_CANDIDATES))
        self.strengths = np.zeros((0, voicing.MAX_CANDIDATES))
        self.counts = np.zeros(0, np.int64)  # 0: candidates not computed yet

    def trim(self, base: int) -> None:
        """Forget the frames before sample ``base`` (a multiple of HOP_LENGTH)."""
        drop = base // HOP_LENGTH - self.first
        if drop > 0:
            keep = slice(min(drop, len(self.counts)), None)
            self.peaks, self.counts = self.peaks[keep], self.counts[keep]
            self.freqs, self.strengths = self.freqs[keep], self.strengths[keep]
            self.first += drop

    def tracks(self, audio: np.ndarray, base: int, starts: list[int], ends: list[int]):
        """Voicing tracks of the windows [starts[i], ends[i]) (as :meth:`ChannelPitch.tracks`
        takes them): for each, ``(f0, voiced)`` as ``praat_voicing.praat_voicing`` of the
        window's samples gives them."""
        rows = (base + len(audio)) // HOP_LENGTH + 1 - self.first
        if rows > len(self.counts):
            extra = rows - len(self.counts)
            self.peaks = np.concatenate([self.peaks, np.full(extra, np.nan)])
            self.counts = np.concatenate([self.counts, np.zeros(extra, np.int64)])
            empty = np.zeros((extra, voicing.MAX_CANDIDATES))
            self.freqs = np.concatenate([self.freqs, empty])
            self.strengths = np.concatenate([self.strengths, empty])
        clips = [audio[s - base:e - base] for s, e in zip(starts, ends)]
        peaks = [voicing.clip_peak(y) for y in clips]
        spans = []  # (rows of its fitting frames, its frame count, its first fitting frame)
        for s, y in zip(starts, clips):
            lo, hi = voicing.fitting_frames(len(y), self.sr)
            first = s // HOP_LENGTH - self.first
            spans.append((slice(first + lo, first + hi), 1 + len(y) // HOP_LENGTH, lo))
        self._compute(audio, base, [span for span, _, _ in spans], "peaks")
        need = [np.arange(span.start, span.stop)[
                    self.peaks[span] >= voicing.quiet_peak(peak, self.sr)]
                for (span, _, _), peak in zip(spans, peaks) if peak > 0.0]
        self._compute(audio, base, need, "candidates")
        return [voicing.decode_voicing(self.freqs[span], self.strengths[span],
                                       self.counts[span], self.peaks[span], peak, self.sr,
                                       count, lo)
                for (span, count, lo), peak in zip(spans, peaks)]

    def _compute(self, audio: np.ndarray, base: int, selections, what: str) -> None:
        """Compute ``what`` ("peaks" or "candidates") of the rows in ``selections`` (slices
        or index arrays) not yet done, all in one call."""
        todo = np.zeros(len(self.counts), bool)
        for rows in selections:
            todo[rows] = True
        todo &= np.isnan(self.peaks) if what == "peaks" else self.counts == 0
        rows = np.flatnonzero(todo)
        if len(rows) == 0:
            return
        centres = (rows + self.first) * HOP_LENGTH - base
        if what == "peaks":
            self.peaks[rows] = voicing.frame_peaks(audio, self.sr, centres)
        else:
            self.freqs[rows], self.strengths[rows], self.counts[rows] = \
                voicing.frame_candidates(audio, self.sr, centres)


class ChannelProsody:
    """The pitch and voice columns of one streamed channel's windows, from its pitch
    frames observed once (:class:`ChannelPitch`, :class:`ChannelVoicing`); held and
    trimmed as they are."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.pitch, self.voicing = ChannelPitch(spec.sr), ChannelVoicing(spec.sr)

    def trim(self, base: int) -> None:
        """Forget the frames before sample ``base`` (a multiple of HOP_LENGTH)."""
        self.pitch.trim(base)
        self.voicing.trim(base)

    def pitch_voice(self, audio: np.ndarray, base: int, starts: list[int], ends: list[int]):
        """For each window [starts[i], ends[i]) (as :meth:`ChannelPitch.tracks` takes
        them), ``shape.pitch_voice`` of its samples: its pitch and voice columns and its
        F0 and voicing-probability frames."""
        tracks = self.pitch.tracks(audio, base, starts, ends)
        pulses = self.voicing.tracks(audio, base, starts, ends)
        return [shape.pitch_voice_tracks(audio[s - base:e - base], self.spec, track, pulse)
                for s, e, track, pulse in zip(starts, ends, tracks, pulses)]
