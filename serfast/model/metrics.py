"""Classification scores: accuracy, unweighted average recall (UAR), per-class table,
confusion matrix, and their mean ± std over cross-validation folds. NumPy only."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int counts; rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Every score of one set of predictions (class indices into ``labels``).

    Returns a JSON-ready dict: ``n``, ``labels``, ``accuracy``, ``uar`` (mean recall of
    the classes present), ``macro_precision``, ``macro_recall``, ``macro_f1``,
    ``per_class`` ({label: precision, recall, f1, support}) and ``confusion`` (lists).
    Classes absent from ``y_true`` are left out of the macro averages.
    """
    cm = confusion(y_true, y_pred, len(labels))
    support = cm.sum(1)
    predicted = cm.sum(0)
    hits = np.diag(cm).astype(float)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(hits), where=denom > 0)
    present = support > 0
    n = int(cm.sum())

    def macro(v: np.ndarray) -> float:
        return float(v[present].mean()) if present.any() else 0.0

    return {
        "n": n,
        "labels": list(labels),
        "accuracy": float(hits.sum() / n) if n else 0.0,
        "uar": macro(recall),
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "per_class": {lab: {"precision": float(precision[k]), "recall": float(recall[k]),
                            "f1": float(f1[k]), "support": int(support[k])}
                      for k, lab in enumerate(labels)},
        "confusion": cm.tolist(),
    }


SUMMARY_KEYS = ("accuracy", "uar", "macro_precision", "macro_recall", "macro_f1")


def summarize_folds(fold_scores: list[dict]) -> dict:
    """Mean and std (population) over folds of every key in :data:`SUMMARY_KEYS`:
    ``{key: {"mean": m, "std": s}}``."""
    return {k: {"mean": float(np.mean([f[k] for f in fold_scores])),
                "std": float(np.std([f[k] for f in fold_scores]))} for k in SUMMARY_KEYS}
