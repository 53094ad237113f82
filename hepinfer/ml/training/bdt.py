"""Training of the BDTs (``bdt``, ``bdt_nanoaod``, any xgboost model): XGBoost (hist), early
stopping on a validation split (weighted log-loss), seeded."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hepinfer.logs import get_logger

log = get_logger(__name__)


@dataclass
class BDTSettings:
    max_depth: int = 6
    eta: float = 0.05
    rounds: int = 1500
    early_stopping: int = 50
    subsample: float = 0.8
    colsample: float = 0.8
    seed: int = 1
    threads: int = 0
    val_fraction: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


def train_bdt(
    x: np.ndarray,
    labels: np.ndarray,
    settings: BDTSettings,
    *,
    weights: np.ndarray | None = None,
    progress: bool = True,
    name: str = "bdt",
):
    """Train on ``x`` and ``labels``, each jet counted with its weight (the sample's flat-pT weights)."""
    import xgboost as xgb

    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(labels))
    n_val = max(1, int(len(labels) * settings.val_fraction))
    val, train = order[:n_val], order[n_val:]
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    dtrain = xgb.DMatrix(x[train], label=labels[train], weight=w[train])
    dval = xgb.DMatrix(x[val], label=labels[val], weight=w[val])
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": settings.max_depth,
        "eta": settings.eta,
        "subsample": settings.subsample,
        "colsample_bytree": settings.colsample,
        "seed": settings.seed,
        "nthread": settings.threads,
    }
    history: dict = {}
    callbacks = []
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.rounds, desc=f"train {name}", unit="tree")

        class Progress(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                bar.update(1)
                return False

        callbacks.append(Progress())
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=settings.rounds,
        evals=[(dtrain, "train"), (dval, "val")],  # early stopping watches the last one
        early_stopping_rounds=settings.early_stopping,
        evals_result=history,
        verbose_eval=False,
        callbacks=callbacks,
    )
    if progress:
        bar.close()
    best = int(booster.best_iteration) + 1
    booster = booster[:best]  # keep only the trees up to the best validation loss
    log.info(f"{name}: {best} trees (early stopping on {n_val} validation jets)")
    curve = {
        "x_label": "trees",
        "x": list(range(1, len(history["val"]["logloss"]) + 1)),
        "series": {"train loss": history["train"]["logloss"], "validation loss": history["val"]["logloss"]},
        "best": best,
    }
    return booster, {"trees": best, "train_jets": len(train), "val_jets": n_val, "curve": curve}
