"""``--check-local``: how far the scores of the run differ from local inference, model by model.

Both runs record every selected jet's score per model (:class:`~hepinfer.analysis.job.recorder.ScoreRecorder`),
keyed by chunk, so the same jets are compared whatever order the workers finished in.  Per model,
:func:`compare_scores` gives the largest absolute score difference and the fraction of jets whose tag
decision flips at the processor's cut (a jet is tagged when its score > ``threshold``).

What passes (:func:`local_check`):

* a model the server runs with the local engine on CPU (the embedded server's default: the same
  code on the same file) must give exactly the local scores;
* any other model served at full precision (torch fp32, or a server that does not say: precision
  ``unknown``) must agree with local inference to :data:`TOLERANCE` on every jet, with no tag
  decision flipped;
* a model the server runs in reduced precision (fp16, bf16) or compiled is reported, not checked:
  its scores are expected to differ;
* the cut flow up to the tagging (events, selected jets) must be identical for every model.

``identical`` keeps its plain meaning: histograms and cut flow bin for bin the same.
"""

from __future__ import annotations

import numpy as np

from hepinfer.errors import InputMismatch

TOLERANCE = 1e-5  # local and served scores of a full-precision engine agree to this (torch fp32: 1.5e-6)
SHARED_CUTFLOW = ("events", "events_with_selected_fatjet", "selected_fatjets")


def compare_scores(local, remote, cut: float) -> dict:
    """Per-jet comparison of two score arrays of the same jets: ``jets``, ``max_abs_diff`` (over the
    jets finite on both sides), ``flipped`` (jets tagged, score > ``cut``, on one side only),
    ``flip_fraction`` (flipped / jets; 0 without jets) and ``nonfinite`` (jets NaN / inf on one side only)."""
    local = np.asarray(local, dtype=np.float64).reshape(-1)
    remote = np.asarray(remote, dtype=np.float64).reshape(-1)
    if local.shape != remote.shape:
        raise InputMismatch(f"cannot compare scores: {local.size} jets scored locally, {remote.size} on the server")
    finite = np.isfinite(local) & np.isfinite(remote)
    diff = np.abs(local[finite] - remote[finite])
    flipped = int(np.count_nonzero((local > cut) != (remote > cut)))
    return {
        "jets": int(local.size),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "flipped": flipped,
        "flip_fraction": flipped / local.size if local.size else 0.0,
        "nonfinite": int(np.count_nonzero(np.isfinite(local) != np.isfinite(remote))),
    }


def joined(recorded: dict) -> np.ndarray:
    """One model's recorded scores ({chunk: scores}) as one array, chunks in order."""
    parts = [np.asarray(recorded[k]).reshape(-1) for k in sorted(recorded)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _same_engine(model: str, served: dict) -> bool:
    """True when the server says it runs ``model`` with the engine local inference uses, on CPU, in fp32."""
    from hepinfer.models import SPECS

    spec = SPECS.get(model)
    return (
        spec is not None
        and bool(served.get("declared"))
        and served.get("engine") == spec.engine
        and served.get("device") == "cpu"
        and served.get("precision") == "fp32"
        and not served.get("compiled")
    )


def local_check(remote_out: dict, local_out: dict, serving: dict | None, cut: float | dict[str, float]) -> dict:
    """The ``local_check`` entry of the summary (without timings) from the two runs' outputs (each with
    ``scores`` {model: {chunk: scores}}) and ``serving`` {model: ServedEngine as_dict()} (None: local run).

    ``models``: per model :func:`compare_scores` plus ``reduced`` (the server says reduced precision or
    compiled: reported, not checked), ``cut`` (``cut``, or its entry for the model: each model's
    working point), ``tolerance`` (0 for the local engine served on CPU, else
    :data:`TOLERANCE`) and ``agrees`` (within it, no flip); ``passed``:
    every model that is checked agrees and the shared cut flow is identical."""
    from hepinfer.analysis.job.summary import same_result

    models = {}
    for model, scores in remote_out["scores"].items():
        local_scores = local_out["scores"].get(model, {})
        if set(local_scores) != set(scores):
            raise InputMismatch(f"model {model!r}: the local run scored other chunks than the run it checks")
        try:
            model_cut = float(cut[model] if isinstance(cut, dict) else cut)
            entry = {**compare_scores(joined(local_scores), joined(scores), model_cut), "cut": model_cut}
        except InputMismatch as err:
            raise InputMismatch(f"model {model!r}: {err}") from None
        served = (serving or {}).get(model) or {}
        entry["reduced"] = bool(served.get("reduced", False))
        entry["tolerance"] = 0.0 if _same_engine(model, served) else TOLERANCE
        entry["agrees"] = (
            entry["max_abs_diff"] <= entry["tolerance"] and entry["flipped"] == 0 and entry["nonfinite"] == 0
        )
        models[model] = entry
    shared = all(int(remote_out["cutflow"][k]) == int(local_out["cutflow"][k]) for k in SHARED_CUTFLOW)
    return {
        "identical": same_result(remote_out, local_out),
        "passed": shared and all(m["agrees"] or m["reduced"] for m in models.values()),
        "tolerance": TOLERANCE,
        "cut": cut,
        "models": models,
    }
