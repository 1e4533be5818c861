"""What a channel's windows add up to: emotion shares, dominant emotion, the most
negative stretch; and segments (adjacent windows with the same label merged).

Time is cut into cells of ``CELL`` seconds. Each cell of speech gets the mean
probabilities of the windows covering it and the label of their arg-max; shares are
fractions of speech time. With ``min_confidence`` P, a cell whose top mean probability is
below P is uncertain: it counts for no emotion's share (the shares then sum to the
confident fraction of speech) and its time is ``uncertain_seconds``.

The most negative stretch is the interval that maximises the sum, over its cells, of
``negativity - 0.5`` on speech (negativity: summed probability of angry, sad, fearful and
disgust) and ``-NON_SPEECH_COST`` on silence, so it covers speech where negative emotions
dominate and bridges short turns of the other speaker but not long silences. It is empty
when no speech cell is more negative than not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CELL", "NEGATIVE", "NON_SPEECH_COST", "UNCERTAIN", "ChannelSummary",
           "merge_segments", "summarize"]

#: Resolution of speech time in seconds.
CELL = 0.05
#: Emotions counted as negative.
NEGATIVE = ("angry", "sad", "fearful", "disgust")
#: Cost per cell of non-speech inside a negative stretch (in units of negativity).
NON_SPEECH_COST = 0.25
#: The label of a window (and the dominant of a channel) below the confidence asked for.
UNCERTAIN = "uncertain"


@dataclass
class ChannelSummary:
    """One row of summary.csv (times in seconds; shares sum to 1 over speech)."""

    speech_seconds: float
    windows: int
    shares: dict[str, float]
    dominant: str
    negative_start: float | None
    negative_end: float | None
    negative_score: float | None  # mean negativity over the stretch's speech
    uncertain_seconds: float = 0.0  # labelled speech whose top probability is below P


def summarize(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray,
              regions: list[tuple[float, float]], labels: list[str],
              seconds: float, min_confidence: float = 0.0) -> ChannelSummary:
    """Summarise one channel; ``starts``/``ends`` (n,) s, ``probs`` (n, len(labels));
    cells below ``min_confidence`` are uncertain (see the module docstring)."""
    n_cells = max(1, int(np.ceil(seconds / CELL)))
    cell = lambda t: np.clip(np.round(np.asarray(t) / CELL).astype(np.int64), 0, n_cells)  # noqa: E731
    speech = np.zeros(n_cells + 1, np.int64)
    for a, b in regions:
        speech[cell(a)] += 1
        speech[cell(b)] -= 1
    speech = np.cumsum(speech)[:n_cells] > 0
    acc = np.zeros((n_cells + 1, len(labels) + 1))
    w = np.concatenate([probs, np.ones((len(probs), 1))], axis=1)
    np.add.at(acc, cell(starts), w)
    np.add.at(acc, cell(ends), -w)
    acc = np.cumsum(acc, axis=0)[:n_cells]
    covered = speech & (acc[:, -1] > 0.5)
    mean = acc[:, :-1] / np.maximum(acc[:, -1:], 1e-9)
    speech_seconds = float(sum(min(b, seconds) - a for a, b in regions))
    shares = {lab: 0.0 for lab in labels}
    dominant, uncertain = "", 0
    if covered.any():
        sure = mean[covered].max(axis=1) >= min_confidence
        uncertain = int((~sure).sum())
        counts = np.bincount(mean[covered][sure].argmax(axis=1), minlength=len(labels))
        shares = {lab: float(c) / covered.sum() for lab, c in zip(labels, counts)}
        dominant = labels[int(counts.argmax())] if sure.any() else UNCERTAIN
    neg = mean[:, [i for i, lab in enumerate(labels) if lab in NEGATIVE]].sum(axis=1)
    score = np.where(covered, neg - 0.5, -NON_SPEECH_COST)
    stretch = _max_subarray(score)
    if stretch is None:
        return ChannelSummary(speech_seconds, len(starts), shares, dominant, None, None, None,
                              uncertain * CELL)
    i, j = stretch
    inside = covered[i:j]
    return ChannelSummary(speech_seconds, len(starts), shares, dominant, i * CELL,
                          min(j * CELL, seconds), float(neg[i:j][inside].mean()),
                          uncertain * CELL)


def _max_subarray(x: np.ndarray) -> tuple[int, int] | None:
    """[i, j) maximising ``x[i:j].sum()`` if that sum is positive, else None."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    low = np.minimum.accumulate(c)
    j = int(np.argmax(c - low))
    if c[j] - low[j] <= 0:
        return None
    i = int(np.argmin(c[:j + 1]))
    return i, j


def merge_segments(rows: list[dict], labels: list[str]) -> list[dict]:
    """Merge runs of windows of one channel (dicts with start, end, label, confidence and
    one probability per label, in time order) that share a label and overlap or touch.

    Returns segment dicts: start, end, label, confidence and probabilities (means over
    the segment's windows), windows (count).
    """
    out: list[dict] = []
    group: list[dict] = []
    reach = 0.0  # the furthest end in the group
    for r in rows + [None]:
        if group and (r is None or r["label"] != group[0]["label"]
                      or r["start"] > reach + 1e-6):
            seg = {"start": group[0]["start"], "end": reach, "label": group[0]["label"],
                   "windows": len(group)}
            for key in ["confidence"] + labels:
                seg[key] = float(np.mean([g[key] for g in group]))
            out.append(seg)
            group = []
        if r is not None:
            reach = max(reach, r["end"]) if group else r["end"]
            group.append(r)
    return out
