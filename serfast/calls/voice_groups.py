"""Speaker groups for recordings of unknown speakers: each channel's voice, clustered.

A channel's voice is the mean speaker embedding (:mod:`serfast.features.voice_encoder`) of
up to :data:`MAX_REGIONS` of its speech regions (the 1.6 s at each one's centre), found
by the same streaming noise reduction and VAD as labelling. Voices are clustered by
average linkage over cosine distances, cut at :data:`DISTANCE`: on the six corpora, with
each corpus held out in turn and the cut chosen on the other five (pairwise same-speaker
F1), every fold chose 0.35, and per-cluster normalisation scored mean UAR 0.480 against
0.431 with all clips in one group and 0.384 with each clip alone (bench/RESULTS.md).
Average linkage keeps every pairwise distance, so at most :data:`MAX_CHANNELS` channels
are clustered at once.
"""

from __future__ import annotations

import numpy as np

from .channel import WindowOptions, stream_channel
from .vad import speech_detector
from ..features.voice_encoder import centre_piece, embed_pieces

__all__ = ["DISTANCE", "MAX_CHANNELS", "MAX_REGIONS", "channel_voice", "check_channels",
           "voice_clusters"]

DISTANCE = 0.35  # cosine distance at which clusters stop merging
MAX_REGIONS = 8  # speech regions embedded per channel
MAX_CHANNELS = 5000  # channels clustered at once (n^2 / 2 float64 distances: 100 MB)
KEEP_SECONDS = 60.0  # audio held back for regions still open


class _Enough(Exception):
    """The channel has given :data:`MAX_REGIONS` regions: decoding stops."""


class _Voice:
    """A channel streaming through the VAD; keeps the centre of its first regions."""

    def __init__(self, spec, options: WindowOptions):
        self.spec = spec
        self.vad = speech_detector(spec.sr, spec.hop_length, options.vad)
        self.audio, self.base = np.zeros(0, np.float32), 0
        self.pieces: list[np.ndarray] = []

    def push(self, y: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, y])
        self._take(self.vad.push(y))
        if len(self.pieces) >= MAX_REGIONS:
            raise _Enough
        keep = len(self.audio) - int(KEEP_SECONDS * self.spec.sr)
        if keep > 0:
            self.audio, self.base = self.audio[keep:], self.base + keep

    def finish(self) -> list[np.ndarray]:
        if len(self.pieces) < MAX_REGIONS:
            self._take(self.vad.finish())
        return self.pieces

    def _take(self, regions) -> None:
        for a, b in regions[:MAX_REGIONS - len(self.pieces)]:
            a, b = max(a - self.base, 0), min(b - self.base, len(self.audio))
            if b > a:
                self.pieces.append(centre_piece(self.audio, a, b, self.spec.sr))


def channel_voice(path: str, channel: int | None, spec,
                  options: WindowOptions = WindowOptions()) -> np.ndarray | None:
    """(256,) unit vector: the voice of channel ``channel`` of ``path`` (None: the mix),
    read at ``spec.sr``; None where no speech is found. Raises
    :class:`serfast.io.audio.AudioError` when the file cannot be decoded."""
    state = _Voice(spec, options)
    try:
        stream_channel(state, path, channel, options)
        pieces = state.finish()
    except _Enough:
        pieces = state.pieces
    if not pieces:
        return None
    mean = embed_pieces(pieces, spec.sr).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def check_channels(n: int) -> None:
    """ValueError (one line) when ``n`` channels are more than :data:`MAX_CHANNELS`."""
    if n > MAX_CHANNELS:
        raise ValueError(f"--speakers voice clusters at most {MAX_CHANNELS:,} channels at once "
                         f"(got {n:,}): label the archive in parts")


def voice_clusters(voices: np.ndarray) -> np.ndarray:
    """(n,) int64 cluster of each of the (n, d) ``voices``, numbered from 0 in order of
    first appearance. ValueError (one line) beyond :data:`MAX_CHANNELS`."""
    n = len(voices)
    check_channels(n)
    if n < 2:
        return np.zeros(n, np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    found = fcluster(linkage(np.asarray(voices, np.float64), "average", metric="cosine"),
                     DISTANCE, "distance")
    _, first, inverse = np.unique(found, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)
