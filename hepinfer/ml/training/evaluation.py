"""``hepinfer evaluate``: a model's figures of merit on labelled samples, scored through the same
runtimes as analysis code (local, or a Triton server), and their record in a model card.

Figures (:func:`hepinfer.ml.training.roc.summary`): AUC with its bootstrap uncertainty,
1/eps_B at eps_S = 30 % and 50 %, eps_S at mistag rates 1 % and 10 %, and the working points (score
thresholds of ``top@1%``, ``top@10%``, ``top@eff30%``, ``top@eff50%``); per bin of jet pT
(:data:`~hepinfer.ml.training.roc.PT_BINS`, ``per_pt_bin``) the AUC, 1/eps_B and the working
points' efficiencies at their global thresholds.  :func:`record` writes them into a model's
manifest.json (``metrics`` and ``working_points``, which code reads) and rewrites its model_card.md,
with the ROC curve, score distributions and figures per pT bin beside them.  The figures are
unweighted: every selected jet counts once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import awkward as ak
import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.logs import get_logger
from hepinfer.ml.training import plots, roc
from hepinfer.ml.training.cards import write_card
from hepinfer.ml.training.dataset import JetSample, load_jets
from hepinfer.models.resolved import Model, resolve

log = get_logger(__name__)

TEST_SAMPLE = "independent test sample"  # the manifest's name for the evaluation that sets the working points


def build_chunked(model: Model, sample: JetSample, chunk: int = 4096) -> dict:
    """Inputs of ``model`` for every jet of ``sample``, built ``chunk`` jets at a time (bounded memory)."""
    cons = sample.constituents
    parts = [
        model.build_inputs(sample.jets[s : s + chunk], None if cons is None else cons[s : s + chunk])
        for s in range(0, len(sample), chunk)
    ]
    return (
        {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if parts
        else model.build_inputs(sample.jets, sample.constituents)
    )


def score(
    model: Model, inputs: dict, *, artefact=None, mode: str = "local", url: str | None = None, chunk: int = 2048
) -> np.ndarray:
    """P(signal) of every row of ``inputs``: from ``artefact`` when given, else through a Scorer."""
    from hepinfer.runtime.local import LocalRuntime
    from hepinfer.scorer import Scorer

    spec = model.spec
    runner = (
        LocalRuntime(spec, artefact=artefact, threads=0)
        if artefact is not None
        else Scorer(spec, mode=mode, url=url, threads=0)
    )
    call = runner.infer if artefact is not None else runner
    chunk = min(chunk, spec.max_batch_size or chunk)  # the model's batch bounds its memory (ParticleNet's kNN)
    n = len(next(iter(inputs.values())))
    out = [call({k: v[s : s + chunk] for k, v in inputs.items()})[spec.output_names[0]] for s in range(0, n, chunk)]
    return np.concatenate(out)[:, 1] if out else np.zeros(0)


def signal_class(model: Model) -> str:
    spec = model.spec
    return spec.classes[1] if len(spec.classes) > 1 else "signal"


def evaluate(
    model: str,
    samples,
    *,
    artefact=None,
    mode: str = "local",
    url: str | None = None,
    plot: str | Path | None = None,
    plots_dir: str | Path | None = None,
    bootstrap: int = roc.BOOTSTRAP,
) -> dict:
    """Metrics of ``model`` on the selected jets of ``samples`` (all of them, not balanced, unweighted),
    globally and per pT bin (``per_pt_bin``).  ``plot``: the ROC curve to this PNG; ``plots_dir``: ROC
    curve, score distributions and figures per pT bin there."""
    model = resolve(model)
    spec = model.spec
    data = load_jets(samples, balance=False, constituents=model.reads_constituents, domain=spec.domain)
    counts = data.counts()
    if not counts["top"] or not counts["qcd"]:
        raise ConfigError(
            f"{counts['top']} top and {counts['qcd']} QCD jets selected in {samples!r}: "
            "the figures need both (give signal and background files)"
        )
    inputs = build_chunked(model, data)
    t0 = time.perf_counter()
    scores = score(model, inputs, artefact=artefact, mode=mode, url=url)
    seconds = round(time.perf_counter() - t0, 2)
    result = roc.summary(data.labels, scores, bootstrap=bootstrap, signal=signal_class(model))
    result["per_pt_bin"] = roc.per_pt_bin(
        data.labels, scores, ak.to_numpy(data.jets.pt), working_points=result["working_points"], bootstrap=bootstrap
    )
    result["seconds"] = seconds
    result["files"] = [p.name for p in data.files]
    title = f"{spec.name}: top vs QCD"
    if plot:
        plots.roc(spec.name, data.labels, scores, plot, title=title)
        result["plot"] = str(plot)
    if plots_dir:
        result["plots"] = plots.evaluation(
            spec.name,
            data.labels,
            scores,
            plots_dir,
            result["working_points"],
            title=title,
            per_pt_bin=result["per_pt_bin"],
        )
    if artefact is None and mode == "local":
        from hepinfer.models.catalogue import is_untrained, weights_note

        result["weights"] = "untrained" if is_untrained(spec) else "trained"
        if is_untrained(spec):
            log.info(f"{spec.name}: {weights_note(spec)}")
    log.info(roc.describe(spec.name, result))
    return result


def manifest_source(model: Model, folder) -> str:
    """``source`` of the manifest of an artefact written to ``folder``: "shipped" in the package's
    folder of trained artefacts (the artefact cache then replaces an older shipped one, never the
    user's own training), else "hepinfer train"."""
    from hepinfer.models.catalogue import TRAINED_DIR

    return "shipped" if Path(folder).resolve() == (TRAINED_DIR / model.name).resolve() else "hepinfer train"


def record(model: str, folder, result: dict, name: str = TEST_SAMPLE) -> dict:
    """Put ``result`` (of :func:`evaluate`) into ``folder``'s manifest.json as ``metrics[name]`` (and,
    for the test sample, its ``working_points``) and rewrite the model card from the manifest (a
    network's learning curve is drawn from the manifest's epochs when the folder has none)."""
    model = resolve(model)
    folder = Path(folder)
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder}: no readable manifest.json to record the evaluation in ({err})") from None
    manifest.setdefault("metrics", {})[name] = result
    if manifest.get("source") == "hepinfer train":
        manifest["source"] = manifest_source(model, folder)
    if name == TEST_SAMPLE:
        manifest["working_points"] = result["working_points"]
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    if not (folder / plots.LEARNING_CURVE_JSON).exists() and manifest.get("training", {}).get("epochs"):
        plots.learning_curve(plots.network_curve(manifest["training"]), folder, title=f"{model.name}: learning curve")
    write_card(folder / "model_card.md", model, manifest)
    return manifest


def evaluate_into(model: str, samples, folder, **kwargs) -> dict:
    """Evaluate the artefact in ``folder`` (a model's folder: artefact, manifest.json, model_card.md)
    and record the figures, working points and plots there; return the manifest."""
    import hashlib

    model = resolve(model)
    spec = model.spec
    folder = Path(folder)
    artefact = folder / spec.artefact
    if not artefact.exists():
        raise ConfigError(f"{folder}: no {spec.artefact} of model {spec.name!r} to evaluate")
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
    if manifest.get("sha256") not in (None, hashlib.sha256(artefact.read_bytes()).hexdigest()):
        raise ConfigError(f"{artefact}: its sha256 is not the one manifest.json records; retrain or rebuild it")
    result = evaluate(model, samples, artefact=artefact, plots_dir=folder, **kwargs)
    return record(model, folder, result)
