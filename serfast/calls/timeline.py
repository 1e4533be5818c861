"""Timeline PNG of one call: per channel (agent, customer, or names given), the emotion
probabilities of each window over time, speech regions shaded (matplotlib, no display
needed)."""

from __future__ import annotations

import os

import numpy as np

from .html_report import DEFAULT_CHANNELS, channel_titles

__all__ = ["plot_timeline", "timeline_figure"]


def plot_timeline(png: str, path: str, channel_names: list[str], results: list,
                  labels: list[str], titles: tuple[str, ...] = DEFAULT_CHANNELS) -> None:
    """Write ``png``: :func:`timeline_figure` of the channels of ``path``."""
    timeline_figure(path, channel_names, results, labels, titles).savefig(png, dpi=80)


def timeline_figure(path: str, channel_names: list[str], results: list, labels: list[str],
                    titles: tuple[str, ...] = DEFAULT_CHANNELS):
    """A matplotlib figure, one panel per channel of ``path`` (results: ChannelResult
    list): emotion probabilities (0 to 1) over time in seconds, speech regions shaded;
    channel k is titled ``titles[k]`` (agent, customer by default)."""
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: the caller's backend is left alone
    from matplotlib.patches import Rectangle

    colors = matplotlib.colormaps["tab10"](np.arange(len(labels)) % 10)
    seconds = max([r.seconds for r in results] + [1.0])
    names = channel_titles(channel_names, titles)
    fig = Figure(figsize=(12, 1.8 * len(results) + 0.6))
    axes = fig.subplots(len(results), 1, sharex=True, squeeze=False)
    for ax, name, res in zip(axes[:, 0], channel_names, results):
        for a, b in res.regions:
            ax.axvspan(a, b, color="0.92", lw=0)
        if res.error:
            ax.text(0.5, 0.5, res.error, transform=ax.transAxes, ha="center", va="center")
        elif len(res.starts):
            t, p = _curve(res.starts, res.ends, res.probs)
            ax.stackplot(t, p.T, colors=colors, alpha=0.7, lw=0)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, seconds)
        ax.set_ylabel(f"{names[name]}\nprobability")
    axes[0, 0].set_title(os.path.basename(path), fontsize=10)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in colors]
    fig.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=8)
    return fig


def _curve(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray):
    """Window centres and probabilities, dropping to zero where no window covers time."""
    mid = (starts + ends) / 2
    t, p = [], []
    zero = np.zeros(probs.shape[1])
    for i in range(len(mid)):
        if i == 0 or starts[i] > ends[i - 1]:
            t += [starts[i], starts[i]]
            p += [zero, probs[i]]
        t.append(mid[i])
        p.append(probs[i])
        if i == len(mid) - 1 or starts[i + 1] > ends[i]:
            t += [ends[i], ends[i]]
            p += [probs[i], zero]
    return np.array(t), np.array(p)
