"""The figures beside a model card: ROC curve (:func:`hepinfer.app.plotting.roc`), score
distributions with the working points, learning curves (and their JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import plotting

ROC = "roc.png"
SCORES = "scores.png"
LEARNING_CURVE = "learning_curve.png"
LEARNING_CURVE_JSON = "learning_curve.json"


def scores(labels, values, path, *, title: str, working_points: dict | None = None) -> Path:
    """Score distributions of top and QCD jets (normalised, log scale), with the working points' thresholds."""
    fig, axes = plotting.figure(5.5, 4.0)
    ax = axes[0][0]
    labels = np.asarray(labels).astype(bool)
    values = np.asarray(values, dtype=np.float64)
    bins = np.linspace(0.0, 1.0, 51) if values.min() >= 0 and values.max() <= 1 else 50
    ax.hist(values[labels], bins=bins, histtype="step", density=True, lw=1.5, label="top")
    ax.hist(values[~labels], bins=bins, histtype="step", density=True, lw=1.5, label="QCD")
    for i, (name, wp) in enumerate((working_points or {}).items()):
        ax.axvline(wp["threshold"], color=f"C{i + 2}", ls="--", lw=0.8, label=f"{name}: {wp['threshold']:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("score P(top)")
    ax.set_ylabel("jets (normalised)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return plotting.save(fig, path, dpi=100)


def network_curve(training: dict) -> dict:
    """The learning curve of a network's training record (its ``epochs``)."""
    epochs = training["epochs"]
    return {
        "x_label": "epoch",
        "x": [e["epoch"] for e in epochs],
        "series": {"train loss": [e["train_loss"] for e in epochs], "validation loss": [e["val_loss"] for e in epochs]},
        "best": training.get("best_epoch") or min(epochs, key=lambda e: e["val_loss"])["epoch"],
        "validation_auc": [e.get("val_auc") for e in epochs],
    }


def learning_curve(curve: dict, folder, *, title: str) -> tuple[Path, Path]:
    """``curve``: {x_label, x: [...], series: {name: [...]}, extra ...}; writes the JSON and the PNG."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / LEARNING_CURVE_JSON
    data.write_text(json.dumps(curve, indent=1) + "\n")
    fig, axes = plotting.figure(5.5, 3.8)
    ax = axes[0][0]
    marker = "o-" if len(curve["x"]) <= 60 else "-"
    for name, values in curve["series"].items():
        ax.plot(curve["x"], values, marker, ms=3, label=name)
    if curve.get("best") is not None:
        ax.axvline(curve["best"], color="grey", ls=":", lw=1, label=f"kept: {curve['best']}")
    ax.set_xlabel(curve["x_label"])
    ax.set_ylabel(curve.get("y_label", "loss"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return plotting.save(fig, folder / LEARNING_CURVE, dpi=100), data


def evaluation(name: str, labels, values, folder, working_points: dict | None, *, title: str) -> dict[str, str]:
    """ROC and score-distribution PNGs in ``folder``; {kind: file name}."""
    folder = Path(folder)
    plotting.roc({name: (labels, values)}, folder / ROC, title=title)
    scores(labels, values, folder / SCORES, title=title, working_points=working_points)
    return {"roc": ROC, "scores": SCORES}
