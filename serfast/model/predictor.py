"""A trained model ready to score store rows: labels, spec, config, normalisation, the
gender classifier and a forward pass (NumPy or Keras). Saved and loaded by
:mod:`serfast.model.saved`; the Keras builders are in :mod:`serfast.model.networks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..features.spec import FeatureSpec
from .config import ModelError, NetworkConfig
from .gender import GenderClassifier
from .inputs import column_sums, network_inputs, stat_block

__all__ = ["Predictor", "add_sums", "calibrated", "fit_temperature"]


def calibrated(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (n, K) at softmax temperature ``temperature``: p ** (1 / T),
    renormalised, float32 (T = 1 returns ``proba`` as float32)."""
    if temperature == 1.0:
        return proba.astype(np.float32)
    z = np.log(np.maximum(proba, 1e-12)) / temperature
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature T in [e^-2.5, e^2.5] minimising the negative log-likelihood of the
    classes ``y`` (n,) under ``calibrated(proba, T)``, ``proba`` (n, K) held-out
    probabilities (SciPy's bounded scalar minimiser over log T)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = calibrated(proba, float(np.exp(log_t)))
        return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-2.5, 2.5), method="bounded").x))


def add_sums(total: dict | None, more: dict | None) -> dict | None:
    """Two :meth:`Predictor.group_sums` results added: the statistics of both sets of rows
    as one group (either may be None: no rows)."""
    if not total or not more:
        return total or more
    return {k: tuple(a + b for a, b in zip(total[k], v)) for k, v in more.items()}


@dataclass
class Predictor:
    """A trained model ready to score store rows (see :meth:`predict_proba`)."""

    labels: list[str]
    spec: FeatureSpec
    config: NetworkConfig
    norm: dict
    gender: GenderClassifier | None
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]

    @property
    def needs_frames(self) -> bool:
        """True if :meth:`predict_proba` needs frame-level features."""
        return self.config.frames

    def predict_proba(self, values: np.ndarray, frames: list[np.ndarray] | None = None,
                      groups: np.ndarray | None = None, sums: dict | None = None
                      ) -> np.ndarray:
        """Class probabilities (n, len(labels)) float32.

        ``values``: (n, 169) store rows (gender may be NaN: the gender classifier fills
        it); ``frames``: per-row (n_frames_i, 148) frame features, required when
        :attr:`needs_frames`; ``groups``: (n,) ids (speaker, or file+channel) for
        per-speaker normalisation, None = all rows one group; ``sums``: from
        :meth:`group_sums`, when the rows are a chunk of one larger group.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(self.spec.columns):
            raise ModelError(f"values must be (n, {len(self.spec.columns)}) store rows, "
                             f"got {values.shape}")
        if len(values) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.needs_frames and (frames is None or len(frames) != len(values)):
            raise ModelError("this model needs frame-level features (re-extract the store "
                             "with frames: serfast extract without --no-frames)")
        if groups is None:
            groups = np.zeros(len(values), dtype=int)
        inputs = network_inputs(self.config, self.norm, self.spec, values, frames,
                                np.asarray(groups), self.gender, sums)
        return calibrated(np.asarray(self.forward(inputs), dtype=np.float64),
                          self.config.temperature)

    @property
    def chunked_groups(self) -> bool:
        """True if one group's rows can be scored in chunks (:meth:`group_sums`)."""
        return self.config.network == "serfast" and self.config.norm == "speaker"

    def group_sums(self, values: np.ndarray, frames: list[np.ndarray] | None = None,
                   total: dict | None = None) -> dict:
        """What per-speaker normalisation needs of these rows (one group), added to
        ``total`` (the result for earlier chunks of the same group). Give the total of all
        chunks to :meth:`predict_proba` as ``sums``, and each chunk scores exactly as the
        whole group would in one call, with memory bounded by the chunk.
        Requires :attr:`chunked_groups`."""
        if not self.chunked_groups:
            raise ModelError("this model cannot score a group in chunks")
        values = np.asarray(values, dtype=np.float32)
        parts = {"stats": column_sums(stat_block(self.config, self.spec, values, frames))}
        if self.config.frames:
            parts["frames"] = column_sums(np.concatenate(frames))
        missing = np.isnan(values[:, self.spec.slices["gender"].start])
        p = self.gender.probability(values[missing]) if self.gender is not None else []
        parts["gender"] = (float(missing.sum()), float(np.sum(p)))
        return add_sums(total, parts)
