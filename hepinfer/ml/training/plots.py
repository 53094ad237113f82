"""The figures beside a model card and their file names: ROC curve, score distributions with the
working points, AUC and background rejection per pT bin, learning curve (and its JSON), drawn by
:mod:`hepinfer.figures`."""

from __future__ import annotations

import json
from pathlib import Path

from hepinfer import figures as plotting
from hepinfer.ml.training.roc import auc, roc_curve

ROC = "roc.png"
SCORES = "scores.png"
PT_BINS = "pt_bins.png"
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


def roc(name: str, labels, values, path, *, title: str) -> Path:
    """The ROC curve of one model's scores (``values``) on jets of ``labels``, written to ``path``."""
    eff_s, eff_b = roc_curve(labels, values)
    return plotting.roc({name: (eff_s, eff_b, auc(labels, values))}, path, title=title)


def evaluation(
    name: str, labels, values, folder, working_points: dict | None, *, title: str, per_pt_bin: list | None = None
) -> dict[str, str]:
    """ROC and score-distribution PNGs in ``folder``, and the figures per pT bin when ``per_pt_bin``
    has any (a stale one is removed otherwise); {kind: file name}."""
    from hepinfer.figures.performance import pt_bins

    folder = Path(folder)
    roc(name, labels, values, folder / ROC, title=title)
    plotting.score_distributions(labels, values, folder / SCORES, title=title, working_points=working_points)
    written = {"roc": ROC, "scores": SCORES}
    if per_pt_bin and any(row.get("auc") is not None for row in per_pt_bin):
        pt_bins(per_pt_bin, folder / PT_BINS, title=f"{title}, per pT bin")
        written["pt_bins"] = PT_BINS
    else:
        (folder / PT_BINS).unlink(missing_ok=True)
    return written
