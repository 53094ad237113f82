"""ROC, AUC and background rejection (numpy only), and the ROC plot."""

from __future__ import annotations

from pathlib import Path

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


def plot_roc(curves: dict, path: str | Path, title: str = "top vs QCD") -> Path:
    """``curves``: name -> (labels, scores).  Background rejection vs signal efficiency, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    for name, (labels, scores) in curves.items():
        eff_s, eff_b = roc_curve(labels, scores)
        ok = eff_b > 0
        ax.plot(eff_s[ok], 1.0 / eff_b[ok], label=f"{name} (AUC {auc(labels, scores):.4f})")
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (top)")
    ax.set_ylabel("background rejection 1/$\\epsilon_B$ (QCD)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
