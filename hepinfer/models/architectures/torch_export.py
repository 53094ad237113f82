"""The torch engine's artefact: an exported program (``model.pt2``) made from a network's ONNX file.

The ONNX artefact stays the model of record (shipped, trained or built); the exported program is
derived from it, so every precision, device and engine serves the same weights:

* the network's torch module (:func:`hepinfer.models.architectures.network`) receives the ONNX file's
  weights.  The ONNX exporter folds each batch norm into the convolution before it, so a convolution
  gets the folded kernel and the batch norm after it becomes the identity plus the folded bias
  (running mean 0, running variance ``1 - eps``, scale 1).  Convolutions and linear layers are
  matched to the ONNX ``Conv`` / ``Gemm`` nodes in the order the network runs them (kernel rank
  and shape checked); a batch norm left in the ONNX graph is copied as it is;
* ``torch.export`` writes the module with a dynamic batch axis (``torch.export.save``);
* the program is checked against onnxruntime on toy inputs: the largest difference must be at most
  :data:`TORCH_TOLERANCE` (recorded in the model's manifest under ``torch``), else nothing is written.
  What it is for each network is in the GPU serving guide.

The program is rebuilt when the ONNX file changes (its sha256 is recorded beside it).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from hepinfer.errors import ArtefactMissing, ConfigError, HepinferError
from hepinfer.models.catalogue import artefact_path, manifest, manifest_path, torch_artefact_path
from hepinfer.models.spec import spec_of
from hepinfer.models.toy import toy_inputs

TORCH_TOLERANCE = 1e-4  # what the build refuses; measured: ParticleNet ~2e-6, ResNet50 ~1e-5
NETWORKS = ("particlenet", "resnet", "resnet50")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _onnx_weights(path: Path) -> dict[str, list]:
    """The ONNX graph's Conv (weight, bias), Gemm (weight, bias) and BatchNormalization parameters, in
    graph order."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    found: dict[str, list] = {"Conv": [], "Gemm": [], "BatchNormalization": []}
    for node in graph.node:
        if node.op_type in found:
            found[node.op_type].append([values.get(name) for name in node.input[1:]])
    return found


def load_onnx_weights(net, onnx_path: Path, model) -> None:
    """Give ``net`` (the torch module of ``model``: its ModelSpec or resolved Model) the weights of
    its ONNX file; see the module doc."""
    import torch
    from torch import nn

    spec = spec_of(model)
    order: list = []
    layers = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in net.modules() if isinstance(m, layers)]
    example = toy_inputs(spec, 2, seed=0)
    with torch.no_grad():
        net.eval()(*[torch.from_numpy(example[n]) for n in spec.input_names])
    for h in hooks:
        h.remove()
    onnx = _onnx_weights(onnx_path)
    convs, gemms, norms = iter(onnx["Conv"]), iter(onnx["Gemm"]), iter(onnx["BatchNormalization"])

    def take(it, what: str, module):
        try:
            return next(it)
        except StopIteration:
            raise HepinferError(
                f"{spec.name}: {onnx_path} has fewer {what} layers than the network ({module})"
            ) from None

    def put(param, value, module) -> None:
        if value is None or tuple(param.shape) != tuple(value.shape):
            got = None if value is None else tuple(value.shape)
            want = tuple(param.shape)
            raise HepinferError(f"{spec.name}: {onnx_path} does not match the network at {module}: {got} for {want}")
        param.copy_(torch.from_numpy(np.array(value)))

    folded: set[int] = set()
    with torch.no_grad():
        for i, module in enumerate(order):
            if isinstance(module, nn.Conv1d | nn.Conv2d):
                weight, *bias = take(convs, "Conv", module)
                put(module.weight, weight, module)
                after = order[i + 1] if i + 1 < len(order) else None
                if isinstance(after, nn.BatchNorm1d | nn.BatchNorm2d):
                    folded.add(id(after))
                    after.weight.fill_(1.0)
                    after.running_mean.zero_()
                    after.running_var.fill_(1.0 - after.eps)
                    put(after.bias, bias[0] if bias else np.zeros(after.bias.shape, np.float32), after)
                elif module.bias is not None:
                    put(module.bias, bias[0] if bias else None, module)
            elif isinstance(module, nn.Linear):
                weight, bias = take(gemms, "Gemm", module)[:2]
                put(module.weight, weight, module)
                put(module.bias, bias, module)
            elif id(module) not in folded:
                scale, shift, mean, var = take(norms, "BatchNormalization", module)[:4]
                params = (module.weight, module.bias, module.running_mean, module.running_var)
                for param, value in zip(params, (scale, shift, mean, var)):
                    put(param, value, module)


def export_program(net, model, out: Path, example: dict) -> None:
    """``torch.export`` ``net``, the network of ``model`` (its ModelSpec or resolved Model), with a
    dynamic batch axis and save it to ``out``."""
    import torch

    spec = spec_of(model)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    args = tuple(torch.from_numpy(example[n]) for n in spec.input_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net.eval(), args, dynamic_shapes={n: {0: batch} for n in spec.input_names})
    torch.export.save(program, str(out))


def max_difference(program: Path, onnx_path: Path, model, rows: int = 33, seed: int = 11) -> float:
    """Largest ``|exported program - onnxruntime|`` over every output on ``rows`` toy rows (the program
    called as the torch engine calls it: the inputs in the spec's order, float32 on the CPU)."""
    import onnxruntime as ort
    import torch

    spec = spec_of(model)
    x = toy_inputs(spec, rows, seed=seed)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = dict(zip(spec.output_names, session.run(list(spec.output_names), {n: x[n] for n in spec.input_names})))
    module = torch.export.load(str(program)).module()
    with torch.inference_mode():
        out = module(*(torch.from_numpy(np.ascontiguousarray(x[n])) for n in spec.input_names))
    out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    got = {n: o.float().numpy() for n, o in zip(spec.output_names, out)}
    return max(float(np.abs(got[n] - want[n]).max()) for n in spec.output_names)


def build_torch(model, *, force: bool = False) -> Path:
    """Write ``model.pt2`` beside the ONNX artefact of ``model`` (its ModelSpec or resolved Model; kept
    when it matches that file); return it."""
    from hepinfer.models.architectures import _torch, network

    spec = spec_of(model)
    if spec.name not in NETWORKS or spec.engine != "onnxruntime":
        raise ConfigError(
            f"model {spec.name!r}: the torch engine serves hepinfer's networks ({', '.join(NETWORKS)}); "
            f"{spec.name!r} is served by its own engine ({spec.engine})"
        )
    onnx_path = artefact_path(spec)
    if not onnx_path.exists():
        raise ArtefactMissing(f"model {spec.name!r}: artefact {onnx_path} not built; run `hepinfer models build`")
    out = torch_artefact_path(spec)
    info = manifest(spec).get("torch", {})
    onnx_sha = _sha256(onnx_path)
    if not force and out.exists() and info.get("onnx_sha256") == onnx_sha and info.get("sha256") == _sha256(out):
        return out
    torch = _torch()
    net = network(spec)
    load_onnx_weights(net, onnx_path, spec)
    tmp = out.with_name("tmp-" + out.name)
    export_program(net, spec, tmp, toy_inputs(spec, 4, seed=3))
    diff = max_difference(tmp, onnx_path, spec)
    if diff > TORCH_TOLERANCE:
        tmp.unlink()
        raise HepinferError(
            f"{spec.name}: the exported program differs from {onnx_path} by {diff:.3g} > {TORCH_TOLERANCE}"
        )
    tmp.replace(out)
    data = manifest(spec)
    data["torch"] = {
        "file": out.name,
        "sha256": _sha256(out),
        "bytes": out.stat().st_size,
        "onnx_sha256": onnx_sha,
        "torch_version": torch.__version__,
        "onnx_vs_torch_max_abs_diff": diff,
    }
    manifest_path(spec).write_text(json.dumps(data, indent=2) + "\n")
    return out
