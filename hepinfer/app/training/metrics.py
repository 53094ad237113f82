"""ROC, AUC and background rejection (numpy only), and the ROC plot."""

from __future__ import annotations

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray):
    """(signal efficiency, background efficiency) for every threshold, highest score first."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError("ROC needs both signal and background jets")
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tied score
    tp = np.cumsum(lab)[distinct]
    fp = np.cumsum(~lab)[distinct]
    return np.r_[0.0, tp / lab.sum()], np.r_[0.0, fp / (~lab).sum()]


def auc(labels, scores) -> float:
    eff_s, eff_b = roc_curve(labels, scores)
    return float(np.trapezoid(eff_s, eff_b))


def background_rejection(labels, scores, signal_efficiency: float) -> float:
    """1 / background efficiency at the given signal efficiency (interpolated)."""
    eff_s, eff_b = roc_curve(labels, scores)
    eb = float(np.interp(signal_efficiency, eff_s, eff_b))
    return float("inf") if eb == 0 else 1.0 / eb


def summary(labels, scores) -> dict:
    return {
        "auc": auc(labels, scores),
        "rejection_at_30": background_rejection(labels, scores, 0.3),
        "rejection_at_50": background_rejection(labels, scores, 0.5),
        "jets": {"top": int(np.sum(labels == 1)), "qcd": int(np.sum(labels == 0))},
    }
