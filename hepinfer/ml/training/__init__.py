"""``hepinfer train`` and ``hepinfer evaluate``: top-vs-QCD taggers from generated samples.

train(model, samples): load and balance the selected jets, build the model's inputs with
hepinfer.features, train (torch for the networks, XGBoost for the BDT), export (ONNX / xgboost
JSON) into the artefact cache (or ``out_dir``), write the learning curve (PNG + JSON), evaluate on
an independent sample when given (figures, working points, ROC and score plots), and write
manifest.json and model_card.md beside the artefact.

evaluate(model, samples): scores through the same runtimes as analysis code (local or a Triton
server), then AUC (± bootstrap), 1/eps_B at eps_S = 30 % and 50 %, eps_S at mistag rates 1 % and
10 %, the working points' thresholds, and plots (:mod:`~hepinfer.ml.training.evaluation`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import awkward as ak

from hepinfer import paths
from hepinfer.errors import ConfigError
from hepinfer.logs import get_logger
from hepinfer.ml.training import plots
from hepinfer.ml.training.bdt import BDTSettings, train_bdt
from hepinfer.ml.training.cards import write_card
from hepinfer.ml.training.dataset import JetSample, load_jets
from hepinfer.ml.training.evaluation import (
    TEST_SAMPLE,
    build_chunked,
    evaluate,
    evaluate_into,
    manifest_source,
    record,
)
from hepinfer.ml.training.networks import TrainSettings, train_network
from hepinfer.models.resolved import resolve

log = get_logger(__name__)
CHECKPOINT = "checkpoint.pt"  # beside the artefact while a network trains (``--resume`` continues from it)

__all__ = ["BDTSettings", "TrainSettings", "evaluate", "evaluate_into", "record", "train", "load_jets"]


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "onnxruntime", "xgboost-cpu", "xgboost", "pythia8mc", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _superseded(path: Path) -> list[str]:
    """The hashes a new shipped artefact replaces: the one in ``path`` (the manifest it overwrites)
    and those that one replaced, so that every artefact cache holding any of them installs the new
    one (:func:`hepinfer.models.catalogue.needs_install`)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return sorted({*old.get("supersedes", ()), *([old["sha256"]] if old.get("sha256") else [])})


def _sample_info(sample: JetSample) -> dict:
    pt = sample.jets.pt
    return {
        "files": [p.name for p in sample.files],
        "jets": sample.counts(),
        "pt_range": [round(float(ak.min(pt)), 1), round(float(ak.max(pt)), 1)] if len(sample) else None,
        "weights": "flat pT per class" if sample.weights is not None else "none",
    }


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
    model = resolve(model)
    spec = model.spec
    settings = settings or TrainSettings()
    bdt_settings = bdt_settings or BDTSettings(seed=settings.seed)
    if settings.estimate_only and spec.engine == "xgboost":
        raise ConfigError(f"{spec.name}: a time estimate is for the networks; a BDT trains in seconds")
    t0 = time.perf_counter()
    data = load_jets(
        samples, max_jets=max_jets, seed=settings.seed, constituents=model.reads_constituents, domain=spec.domain
    )
    if len(data) < 20:
        raise ConfigError(f"only {len(data)} selected jets in {samples!r}: generate more events")
    log.info(f"{spec.name}: {len(data)} jets ({data.counts()}) from {len(data.files)} files")
    inputs = build_chunked(model, data)
    out_dir = Path(out_dir) if out_dir else paths.artefact_dir(spec.name, spec.version)
    if not settings.estimate_only:  # an estimate writes nothing
        out_dir.mkdir(parents=True, exist_ok=True)
    artefact = out_dir / spec.artefact
    tmp = out_dir / ("tmp-" + spec.artefact)
    if spec.engine == "xgboost":
        (x,) = (inputs[n] for n in spec.input_names)  # an xgboost model reads one (N, features) tensor
        booster, info = train_bdt(
            x, data.labels, bdt_settings, weights=data.weights, progress=settings.progress, name=spec.name
        )
        booster.save_model(str(tmp))
        used_settings = bdt_settings.as_dict()
        curve = info.pop("curve")
    else:
        from hepinfer.models.architectures import export_onnx

        checkpoint = out_dir / CHECKPOINT
        net, info = train_network(model, inputs, data.labels, settings, data.weights, checkpoint)
        if net is None:  # estimate_only: nothing trained, nothing written
            return {"model": spec.name, "estimate": info["estimate"], "training": info}
        checkpoint.unlink(missing_ok=True)  # the artefact is written below; never shipped
        example = {k: v[:4] for k, v in inputs.items()}
        check = {k: v[:64] for k, v in inputs.items()}
        info["onnx_vs_torch_max_abs_diff"] = export_onnx(net, spec, tmp, example, check)
        info["parameters"] = int(sum(p.numel() for p in net.parameters()))
        used_settings = settings.as_dict()
        curve = plots.network_curve(info)
    source = manifest_source(model, out_dir)
    supersedes = _superseded(out_dir / "manifest.json") if source == "shipped" else []
    tmp.replace(artefact)
    for stale in (plots.ROC, plots.SCORES, plots.PT_BINS):  # figures of an earlier artefact in this folder
        (out_dir / stale).unlink(missing_ok=True)
    plots.learning_curve(curve, out_dir, title=f"{spec.name}: learning curve")
    sha = hashlib.sha256(artefact.read_bytes()).hexdigest()
    manifest = {
        "model": spec.name,
        "weights": "trained",
        "source": source,
        "command": command,
        "sample": _sample_info(data),
        "settings": used_settings,
        "training": info,
        "metrics": {},
        **(
            {"onnx_vs_torch_max_abs_diff": info["onnx_vs_torch_max_abs_diff"]}
            if "onnx_vs_torch_max_abs_diff" in info
            else {}
        ),
        "versions": _versions(),
        "sha256": sha,
        "bytes": artefact.stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 1),
        **({"supersedes": [h for h in supersedes if h != sha]} if supersedes else {}),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_card(out_dir / "model_card.md", model, manifest)
    if test:
        result = evaluate(model, test, artefact=artefact, plots_dir=out_dir)
        manifest = record(model, out_dir, result, TEST_SAMPLE)
    log.info(f"{spec.name}: wrote {artefact}, manifest.json, model_card.md and the learning curve in {out_dir}")
    return manifest
