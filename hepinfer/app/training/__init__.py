"""``hepinfer train`` and ``hepinfer evaluate``: top-vs-QCD taggers from generated samples.

train(model, samples): load and balance the selected jets, build the model's inputs with
hepinfer.features, train (torch for the networks, XGBoost for the BDT), export (ONNX / xgboost
JSON) into the artefact cache (or ``out_dir``), evaluate on an independent sample when given, and
write manifest.json and model_card.md beside the artefact.

evaluate(model, samples): scores through the same runtimes as analysis code (local or a Triton
server), then AUC, 1/eps_B at 30 % and 50 % signal efficiency, and a ROC plot.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ... import paths
from ...errors import ConfigError
from ...features import build_inputs, reads_constituents
from ...logs import get_logger
from ...models import get_spec
from .. import plotting
from . import metrics as metrics_mod
from .bdt import BDTSettings, train_bdt
from .cards import write_card
from .dataset import JetSample, expand, load_jets
from .networks import TrainSettings, train_network

log = get_logger(__name__)

__all__ = ["BDTSettings", "TrainSettings", "evaluate", "train", "load_jets"]


def build_chunked(model: str, sample: JetSample, chunk: int = 4096) -> dict:
    """Inputs for every jet of ``sample``, built ``chunk`` jets at a time (bounded memory)."""
    cons = sample.constituents
    parts = [
        build_inputs(model, sample.jets[s : s + chunk], None if cons is None else cons[s : s + chunk])
        for s in range(0, len(sample), chunk)
    ]
    return (
        {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if parts
        else build_inputs(model, sample.jets, sample.constituents)
    )


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "onnxruntime", "xgboost-cpu", "xgboost", "pythia8mc", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _sample_info(sample: JetSample) -> dict:
    return {"files": [p.name for p in sample.files], "jets": sample.counts()}


def _score(
    model: str, inputs: dict, *, artefact=None, mode: str = "local", url: str | None = None, chunk: int = 2048
) -> np.ndarray:
    from ...runtime.local import LocalRuntime
    from ...scorer import Scorer

    spec = get_spec(model)
    runner = (
        LocalRuntime(spec, artefact=artefact, threads=0)
        if artefact is not None
        else Scorer(spec, mode=mode, url=url, threads=0)
    )
    call = runner.infer if artefact is not None else runner
    n = len(next(iter(inputs.values())))
    out = [call({k: v[s : s + chunk] for k, v in inputs.items()})[spec.output_names[0]] for s in range(0, n, chunk)]
    return np.concatenate(out)[:, 1] if out else np.zeros(0)


def evaluate(
    model: str, samples, *, artefact=None, mode: str = "local", url: str | None = None, plot: str | Path | None = None
) -> dict:
    """Metrics of ``model`` on the selected jets of ``samples`` (all of them, not balanced)."""
    spec = get_spec(model)
    data = load_jets(samples, balance=False, constituents=reads_constituents(spec.name))
    inputs = build_chunked(spec.name, data)
    t0 = time.perf_counter()
    scores = _score(spec.name, inputs, artefact=artefact, mode=mode, url=url)
    result = metrics_mod.summary(data.labels, scores)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if plot:
        plotting.roc({spec.name: (data.labels, scores)}, plot, title=f"{spec.name}: top vs QCD")
        result["plot"] = str(plot)
    if artefact is None and mode == "local":
        from ...models.catalogue import is_trained, weights_note

        result["weights"] = "trained" if is_trained(spec.name) else "untrained"
        if not is_trained(spec.name):
            log.info(f"{spec.name}: {weights_note(spec.name)}")
    log.info(
        f"{spec.name}: AUC {result['auc']:.4f}, 1/eps_B {result['rejection_at_30']:.0f} at eps_S=30%, "
        f"{result['rejection_at_50']:.0f} at eps_S=50% ({result['jets']['top']} top, {result['jets']['qcd']} QCD jets)"
    )
    return result


def train(
    model: str,
    samples,
    *,
    settings: TrainSettings | None = None,
    bdt_settings: BDTSettings | None = None,
    test=None,
    out_dir: str | Path | None = None,
    max_jets: int | None = None,
    command: str = "",
) -> dict:
    spec = get_spec(model)
    settings = settings or TrainSettings()
    bdt_settings = bdt_settings or BDTSettings(seed=settings.seed)
    t0 = time.perf_counter()
    data = load_jets(samples, max_jets=max_jets, seed=settings.seed, constituents=reads_constituents(spec.name))
    if len(data) < 20:
        raise ConfigError(f"only {len(data)} selected jets in {samples!r}: generate more events")
    log.info(f"{spec.name}: {len(data)} jets ({data.counts()}) from {len(data.files)} files")
    inputs = build_chunked(spec.name, data)
    out_dir = Path(out_dir) if out_dir else paths.artefact_dir(spec.name, spec.version)
    out_dir.mkdir(parents=True, exist_ok=True)
    artefact = out_dir / spec.artefact
    tmp = out_dir / ("tmp-" + spec.artefact)
    if spec.engine == "xgboost":
        (x,) = (inputs[n] for n in spec.input_names)  # an xgboost model reads one (N, features) tensor
        booster, info = train_bdt(x, data.labels, bdt_settings, progress=settings.progress, name=spec.name)
        booster.save_model(str(tmp))
        used_settings = bdt_settings.as_dict()
    else:
        from ...models.build import export_onnx

        net, info = train_network(spec.name, inputs, data.labels, settings)
        example = {k: v[:4] for k, v in inputs.items()}
        check = {k: v[:64] for k, v in inputs.items()}
        info["onnx_vs_torch_max_abs_diff"] = export_onnx(net, spec.name, tmp, example, check)
        info["parameters"] = int(sum(p.numel() for p in net.parameters()))
        used_settings = settings.as_dict()
    tmp.replace(artefact)
    evaluation = {}
    if test:
        evaluation["independent test sample"] = evaluate(spec.name, test, artefact=artefact)
        evaluation["independent test sample"]["files"] = [p.name for p in expand(test)]
    manifest = {
        "model": spec.name,
        "weights": "trained",
        "source": "hepinfer train",
        "command": command,
        "sample": _sample_info(data),
        "settings": used_settings,
        "training": info,
        "metrics": evaluation,
        **(
            {"onnx_vs_torch_max_abs_diff": info["onnx_vs_torch_max_abs_diff"]}
            if "onnx_vs_torch_max_abs_diff" in info
            else {}
        ),
        "versions": _versions(),
        "sha256": hashlib.sha256(artefact.read_bytes()).hexdigest(),
        "bytes": artefact.stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_card(
        out_dir / "model_card.md",
        spec.name,
        command=command,
        sample=manifest["sample"],
        settings=used_settings,
        training=info,
        metrics=evaluation,
        versions=manifest["versions"],
    )
    log.info(f"{spec.name}: wrote {artefact}, manifest.json and model_card.md")
    return manifest
