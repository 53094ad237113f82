"""The figures beside a model card and their file names: ROC curve, score distributions with the
working points, learning curve (and its JSON), drawn by :mod:`hepinfer.app.plotting`."""

from __future__ import annotations

import json
from pathlib import Path

from .. import plotting

ROC = "roc.png"
SCORES = "scores.png"
LEARNING_CURVE = "learning_curve.png"
LEARNING_CURVE_JSON = "learning_curve.json"


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
    return plotting.learning_curve(curve, folder / LEARNING_CURVE, title=title), data


def evaluation(name: str, labels, values, folder, working_points: dict | None, *, title: str) -> dict[str, str]:
    """ROC and score-distribution PNGs in ``folder``; {kind: file name}."""
    folder = Path(folder)
    plotting.roc({name: (labels, values)}, folder / ROC, title=title)
    plotting.score_distributions(labels, values, folder / SCORES, title=title, working_points=working_points)
    return {"roc": ROC, "scores": SCORES}
