"""Speaker turns of a recording that holds both speakers in one channel.

Each window of the channel is described by a speaker embedding of up to 1.6 s at the
centre of its speech (:mod:`serfast.features.voice_encoder`: unit vectors, close for one
voice), and the windows are split into two voices by spherical k-means (k = 2, cosine
similarity, started from the two windows farthest apart along the first principal axis).
A window whose two neighbours (in time) both belong to the other voice is given theirs:
one window shorter than a turn is noise.
Voices are named by order of appearance: ``A`` speaks first.

:func:`split_by_speaker` turns one :class:`~serfast.calls.channel.ChannelResult` with
speakers into one result per speaker, so labels, summary and segments come per speaker
(channel names such as ``mix:A``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

__all__ = ["SPEAKERS", "speaker_turns", "split_by_speaker"]

#: Names of the voices, in order of appearance.
SPEAKERS = ("A", "B")


def speaker_turns(embeddings: np.ndarray, starts: np.ndarray,
                  iterations: int = 50) -> np.ndarray:
    """Voice index (0 = ``A``, 1 = ``B``) of each window.

    embeddings : (n, d) the windows' speaker embeddings (unit vectors,
    :func:`serfast.features.voice_encoder.span_embeddings`).  starts : (n,) window starts
    in seconds (any order).  Returns (n,) int64.
    """
    n = len(embeddings)
    if n < 2:
        return np.zeros(n, np.int64)
    x = np.asarray(embeddings, np.float64)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    axis = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)[2][0]
    along = x @ axis
    centres = x[[int(along.argmin()), int(along.argmax())]]
    voice = np.full(n, -1, np.int64)
    for _ in range(iterations):
        nearest = (x @ centres.T).argmax(axis=1)
        if (nearest == voice).all() or (nearest == nearest[0]).all():
            break
        voice = nearest
        centres = np.stack([x[voice == k].mean(axis=0) for k in (0, 1)])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
    voice = np.maximum(voice, 0)
    order = np.argsort(starts, kind="stable")
    timed = voice[order]
    before, middle, after = timed[:-2], timed[1:-1], timed[2:]
    lone = (before == after) & (middle != before)
    middle[lone] = before[lone]
    if timed[0] == 1:
        timed = 1 - timed
    voice[order] = timed
    return voice


def split_by_speaker(name: str, result) -> list[tuple[str, object]]:
    """(channel name, result) per voice of ``result`` (a ChannelResult with
    ``speakers``), or ``[(name, result)]`` when it has none. A voice's speech regions are
    its windows' spans within the channel's regions."""
    if result.speakers is None or result.error:
        return [(name, result)]
    out = []
    for k, voice in enumerate(SPEAKERS):
        mine = result.speakers == k
        spans = sorted(zip(result.starts[mine], result.ends[mine]))
        merged: list[list[float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        regions = [(max(a, ra), min(b, rb)) for a, b in merged for ra, rb in result.regions
                   if min(b, rb) > max(a, ra)]
        out.append((f"{name}:{voice}", replace(
            result, starts=result.starts[mine], ends=result.ends[mine],
            probs=result.probs[mine], regions=regions, speakers=None)))
    return out
