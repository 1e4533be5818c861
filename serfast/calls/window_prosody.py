"""pYIN observations of a channel's pitch frames, computed once for all its windows.

A pitch frame's observations (YIN's F0, pYIN's voicing probability and candidates:
:func:`serfast.features.pitch.observe`) depend only on its 1024 samples. Windows start on
the channel's frame grid (multiples of the STFT hop, 512 samples = two pitch hops), so
every pitch frame that lies wholly inside a window is the channel's pitch frame at the
same place: :class:`ChannelPitch` observes each once, when a window first needs it. The
two or three frames at each edge of a window, which a per-window computation pads with
zeros, are observed for each window, and the Viterbi decode, which depends on the whole
window, runs per window: a window's track is the per-window computation's.
"""

from __future__ import annotations

import numpy as np

from ..features.pitch import FRAME_LENGTH, HOP_LENGTH, Observations, decode, observe
from ..features.spec import inside_frame_range

__all__ = ["ChannelPitch", "inside_pitch_frames"]


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
