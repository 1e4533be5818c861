"""The gender classifier that fills a store row's missing gender column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


__all__ = ["GenderClassifier"]


@dataclass
class GenderClassifier:
    """Logistic regression male-vs-female over the 168 raw values (global z-score)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, values: np.ndarray) -> np.ndarray:
        """(n,) probability that each row is male."""
        z = (np.asarray(values[:, :len(self.mean)], np.float64) - self.mean) / self.scale
        return 1 / (1 + np.exp(-(z @ self.coef + self.intercept)))

    def predict(self, values: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """(n,) 1.0 male / 0.0 female; probabilities averaged over each group first."""
        p = self.probability(values)
        if groups is not None:
            _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
            p = (np.bincount(inv, p) / np.bincount(inv))[inv]
        return (p > 0.5).astype(np.float64)
