"""Build the model artefacts into ``$HEPINFER_HOME/models`` (build time only: torch, imported lazily).

``hepinfer models build`` (and ``hepinfer setup``) run :func:`build_all`.  A model whose trained
artefact ships with the package (ParticleNet, the compact ResNet, the BDTs) is installed from it
(:mod:`hepinfer.models.catalogue`).  A network without shipped weights (ResNet50) gets seeded random
weights with batch-norm statistics calibrated on toy inputs (so scores spread over (0, 1) instead of
saturating), is exported to ONNX with a dynamic batch axis by torch's TorchScript exporter (no
onnxscript needed), and is checked against onnxruntime (max abs diff recorded in manifest.json);
``hepinfer train`` replaces those weights with trained ones, with the same file, names and shapes.
Runtime code never imports this package: it reads artefacts through the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from hepinfer.errors import ArtefactMissing, HepinferError
from hepinfer.logs import get_logger
from hepinfer.models import SPECS
from hepinfer.models.catalogue import (
    artefact_path,
    install_shipped,
    is_built,
    manifest,
    manifest_path,
    needs_install,
    shipped,
    weights_note,
)
from hepinfer.models.resolved import resolve
from hepinfer.models.spec import spec_of
from hepinfer.models.toy import toy_inputs

log = get_logger(__name__)

ONNX_TOLERANCE = 1e-4


def _torch():
    try:
        import torch
    except ImportError as err:
        raise HepinferError("building the networks needs torch: pip install 'hepinfer[build]' (torch==2.13.0)") from err
    return torch


def network(model):
    """The torch module of one of hepinfer's networks (``model``: its ModelSpec or resolved Model)."""
    spec = spec_of(model)
    name = spec.name
    if name == "particlenet":
        from hepinfer.models.architectures.particlenet import ParticleNet

        return ParticleNet(num_features=spec.input("features").shape[0], k=int(spec.extra["k"]))
    if name == "resnet":
        from hepinfer.models.architectures.compact_resnet import CompactResNet

        x = spec.extra
        return CompactResNet(
            tuple(x["widths"]), tuple(x["blocks"]), spec.input("images").shape[0], stem_stride=int(x["stem_stride"])
        )
    if name == "resnet50":
        from hepinfer.models.architectures.resnet import resnet50

        return resnet50(in_channels=spec.input("images").shape[0])
    raise KeyError(name)


def _build_network(spec, out: Path, seed: int) -> dict:
    torch = _torch()
    torch.manual_seed(seed)
    net = network(spec)
    # Calibrate batch-norm statistics on toy inputs (cumulative average).
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    net.train()
    with torch.no_grad():
        for i in range(4):
            batch = toy_inputs(spec, 64, seed=seed + 1000 + i)
            net(*[torch.from_numpy(batch[n]) for n in spec.input_names])
    net.eval()
    diff = export_onnx(net, spec, out, toy_inputs(spec, 4, seed=seed), toy_inputs(spec, 32, seed=seed + 7))
    import onnxruntime as ort

    return {
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
        "onnx_vs_torch_max_abs_diff": diff,
        "parameters": int(sum(p.numel() for p in net.parameters())),
    }


def export_onnx(net, model, out: Path, example: dict, check: dict) -> float:
    """Export ``net`` (eval mode, CPU), the network of ``model`` (its ModelSpec or resolved Model), to
    ONNX with a dynamic batch axis; return max ``|ORT - torch|`` on ``check`` and raise when it exceeds
    ONNX_TOLERANCE."""
    torch = _torch()
    spec = spec_of(model)
    net = net.eval().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            tuple(torch.from_numpy(example[n]) for n in spec.input_names),
            str(out),
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_axes={n: {0: "batch"} for n in spec.input_names + spec.output_names},
            opset_version=17,
            dynamo=False,
        )
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(list(spec.output_names), {n: check[n] for n in spec.input_names})
    with torch.no_grad():
        want = net(*[torch.from_numpy(check[n]) for n in spec.input_names])
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    diff = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if diff > ONNX_TOLERANCE:
        raise HepinferError(f"{spec.name}: onnxruntime differs from torch by {diff:.3g} > {ONNX_TOLERANCE}")
    return diff


def _build_bdt(spec, out: Path, seed: int) -> dict:
    import xgboost as xgb

    n_feat = spec.inputs[0].shape[0]
    rng = np.random.default_rng(seed)
    n = 4000
    y = rng.integers(0, 2, n)
    shift = np.linspace(0.2, 1.0, n_feat)[None, :]
    x = (rng.normal(0, 1, (n, n_feat)) + y[:, None] * shift).astype(np.float32)
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.1,
        "nthread": 1,
        "seed": seed,
        "tree_method": "hist",
    }
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=100)
    booster.save_model(str(out))
    return {"xgboost_version": xgb.__version__, "trees": 100, "max_depth": 4, "training_rows": n}


def build(model, *, seed: int = 20261122, force: bool = False) -> Path:
    """Build the artefact of ``model`` (its ModelSpec or resolved Model; skipped when present unless
    ``force``); return its path."""
    spec = spec_of(model)
    if spec.artefact_file is not None or spec.remote_only:  # a user's file is never written here
        out = artefact_path(spec)
        if spec.remote_only or not out.exists():
            raise ArtefactMissing(
                f"model {spec.name!r}: artefact {out if not spec.remote_only else '(none)'} "
                "is declared, not built by hepinfer: provide the file (or serve it elsewhere)"
            )
        return out
    out = artefact_path(spec)
    if shipped(spec) is not None:
        # the shipped trained weights replace random ones, never the user's own training
        return install_shipped(spec) if force or needs_install(spec) else out
    if is_built(spec) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("tmp-" + out.name)  # keep the suffix: xgboost picks the format by it
    t0 = time.perf_counter()
    info = _build_bdt(spec, tmp, seed) if spec.engine == "xgboost" else _build_network(spec, tmp, seed)
    tmp.replace(out)
    info.update(
        model=spec.name,
        seed=seed,
        weights="random",
        detail="seeded random weights, batch-norm calibrated on toy inputs"
        if spec.engine != "xgboost"
        else "trained on seeded toy data (no physics)",
        sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
        bytes=out.stat().st_size,
        build_seconds=round(time.perf_counter() - t0, 2),
    )
    manifest_path(spec).write_text(json.dumps(info, indent=2) + "\n")
    return out


def build_all(models=None, *, force: bool = False, level: int = logging.INFO) -> list[Path]:
    """Build (or install the shipped artefact of) each of ``models`` (names, resolved here, ModelSpecs
    or resolved Models; default: all declared); say what was done for each on the ``hepinfer`` logger
    at ``level`` (``logging.DEBUG``: quietly, as the main job and the benchmarks do)."""
    built = []
    specs = [resolve(m).spec for m in models] if models else list(SPECS.values())
    for spec in specs:
        name = spec.name
        before = manifest(spec).get("sha256")
        if not is_built(spec) and shipped(spec) is None:
            log.log(level, f"{name}: building (no trained weights shipped; `hepinfer train {name}` trains it) ...")
        build(spec, force=force)
        state = "installed" if manifest(spec).get("sha256") != before else "present"
        log.log(
            level,
            f"{name}: {state} at {artefact_path(spec)} ({manifest(spec).get('bytes', 0) / 1e6:.1f} MB, "
            f"{weights_note(spec)})",
        )
        built.append(artefact_path(spec))
    return built
