"""Classification scores: accuracy, unweighted average recall (UAR), per-class table,
confusion matrix, expected calibration error (ECE), and their mean ± std over
cross-validation folds. NumPy only."""

from __future__ import annotations

import numpy as np

__all__ = ["ECE_BINS", "SUMMARY_KEYS", "calibration_bins", "confusion",
           "expected_calibration_error", "restrict", "scores", "summarize_folds"]

#: Equal-width confidence bins of the expected calibration error over [0, 1].
ECE_BINS = 15


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


def calibration_bins(proba: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Reliability table of probabilities ``proba`` (n, K) against true classes (n,).

    The confidence of a row is its top probability and it is correct when that class is
    the true one. ``bins`` equal-width bins split [0, 1]; bin b holds confidences in
    (b / bins, (b + 1) / bins], bin 0 also 0. One dict per non-empty bin: ``lo``, ``hi``,
    ``n``, ``accuracy`` (share correct) and ``confidence`` (mean confidence).
    """
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(1)
    correct = proba.argmax(1) == np.asarray(y_true)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return [{"lo": b / bins, "hi": (b + 1) / bins, "n": int((which == b).sum()),
             "accuracy": float(correct[which == b].mean()),
             "confidence": float(confidence[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE: the mean over :func:`calibration_bins` of |accuracy - confidence|, weighted
    by the bins' share of rows (0 = calibrated; 0.0 for no rows)."""
    table = calibration_bins(proba, y_true, bins)
    n = sum(b["n"] for b in table)
    gaps = sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in table)
    return float(gaps / n) if n else 0.0


def restrict(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``proba`` (n, K) with the columns not in ``classes`` (indices) set to 0 and each row
    renormalised: the model's answer when it may only pick one of ``classes``."""
    out = np.zeros_like(np.asarray(proba, dtype=np.float64))
    kept = np.asarray(proba, dtype=np.float64)[:, classes]
    out[:, classes] = kept / np.maximum(kept.sum(1, keepdims=True), np.finfo(float).tiny)
    return out


SUMMARY_KEYS = ("accuracy", "uar", "macro_precision", "macro_recall", "macro_f1", "ece")


def summarize_folds(fold_scores: list[dict]) -> dict:
    """Mean and std (population) over folds of every key in :data:`SUMMARY_KEYS` that
    every fold has: ``{key: {"mean": m, "std": s}}``."""
    keys = [k for k in SUMMARY_KEYS if all(k in f for f in fold_scores)]
    return {k: {"mean": float(np.mean([f[k] for f in fold_scores])),
                "std": float(np.std([f[k] for f in fold_scores]))} for k in keys}
