"""Model engines: the code that actually evaluates a model file.

This module is deliberately self-contained (numpy, onnxruntime, xgboost, torch; no hepinfer
imports): the embedded Triton server copies it next to its ``model.py`` and runs the very same code,
so local and remote scores come from one implementation and agree to float precision.

The torch engine runs a network's exported program (``model.pt2``, written by ``hepinfer models
build --torch`` from the ONNX artefact and checked against it) on a device (``cpu``, ``cuda:0``) in
a precision (``fp32``, ``fp16``, ``bf16``: parameters and floating inputs cast to it, outputs back to
float32), optionally compiled with ``torch.compile`` and warmed up at load (``compile_seconds``).
It evaluates at most ``max_rows`` rows per call (larger batches are split), so the memory a batch
takes is bounded by what the batch limits were sized for.

The TorchScript and FIL engines run models of repositories hepinfer did not write, as Triton's
PyTorch and FIL backends would (``hepinfer serve --repository``; :mod:`hepinfer.serving.foreign`):
a TorchScript file (``torch.jit.load``) with the backend's rules for matching tensors to the
arguments and results of ``forward``, and an XGBoost model read as the FIL ``model_type`` says,
answering what the FIL parameters ask for (probabilities per class, the class, or the score).

The null engine is a benchmark device: it reads no file and answers zeros of the declared output
shapes at once, so a server running it costs only its own request handling (``hepinfer serve
--engine null``; ``hepinfer bench client`` measures how fast one analysis worker can feed it).
"""

from __future__ import annotations

import json

import numpy as np


class OnnxEngine:
    """onnxruntime session, CPU provider, ``threads`` intra-op threads (0 = onnxruntime's default)."""

    def __init__(self, path: str, input_names, output_names, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        for kind, names, declared in (
            ("input", self.input_names, self.session.get_inputs()),
            ("output", self.output_names, self.session.get_outputs()),
        ):
            known = [t.name for t in declared]
            missing = [n for n in names if n not in known]
            if missing:
                raise ValueError(f"{path}: the ONNX model has no {kind} {missing} (its {kind}s: {known})")

    def run(self, inputs: dict) -> dict:
        feeds = {n: inputs[n] for n in self.input_names if n in inputs}  # an optional input may be absent
        outs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs))


class XGBoostEngine:
    """xgboost Booster; binary classifier output as (N, 2) = [1 - p, p] (FIL's predict_proba layout)."""

    def __init__(self, path: str, input_names, output_names, threads: int = 1):
        import xgboost as xgb

        self.booster = xgb.Booster(model_file=str(path))
        self.booster.set_param({"nthread": int(threads) if threads else 0})
        (self.input_name,) = input_names
        (self.output_name,) = output_names

    def run(self, inputs: dict) -> dict:
        x = inputs[self.input_name]
        if len(x) == 0:
            return {self.output_name: np.zeros((0, 2), dtype=np.float32)}
        p = self.booster.inplace_predict(x).astype(np.float32).reshape(-1)
        return {self.output_name: np.stack([1.0 - p, p], axis=1)}


PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchEngine:
    """An exported program (``torch.export``) on ``device`` in ``precision``; see the module doc."""

    def __init__(
        self,
        path: str,
        input_names,
        output_names,
        threads: int = 1,
        device: str = "cpu",
        precision: str = "fp32",
        compiled: bool = False,
        max_rows: int = 0,
        input_shapes: dict | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {sorted(PRECISIONS)}")
        if compiled and set(input_shapes or {}) != set(input_names):
            raise ValueError("a compiled torch engine needs input_shapes (per-row shape of every input) to warm up")
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but this torch ({torch.__version__}) sees no CUDA device")
        self.precision = precision
        self.dtype = getattr(torch, PRECISIONS[precision])
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.max_rows = int(max_rows)
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
        module = torch.export.load(str(path)).module().to(self.device)
        self.module = module.to(self.dtype) if self.dtype != torch.float32 else module
        self.compile_seconds = None
        if compiled:
            import time

            t0 = time.perf_counter()
            mode = "max-autotune-no-cudagraphs" if self.device.type == "cuda" else "default"
            self.module = torch.compile(self.module, mode=mode, dynamic=True)
            self.compile_seconds = round(time.perf_counter() - t0 + self.warm_up(), 2)

    def warm_up(self, rows=(1, 16)) -> float:
        """Run zero inputs of a few batch sizes (compiles a compiled module); return the seconds."""
        import time

        t0 = time.perf_counter()
        for n in rows:
            self.run_torch({name: self.torch.zeros((n, *self.input_shapes[name])) for name in self.input_names})
        return time.perf_counter() - t0

    def _cast(self, t):
        t = t.to(self.device, non_blocking=True)
        return t.to(self.dtype) if t.is_floating_point() else t

    def run_torch(self, inputs: dict) -> dict:
        """Tensors in (any device), float32 tensors out on the engine's device."""
        torch = self.torch
        n = len(inputs[self.input_names[0]])
        step = self.max_rows or max(n, 1)
        parts = []
        with torch.inference_mode():
            for start in range(0, max(n, 1), step):
                args = [self._cast(inputs[name][start : start + step]) for name in self.input_names]
                out = self.module(*args)
                out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
                parts.append([o.float() for o in out])
        if len(parts) == 1:
            return dict(zip(self.output_names, parts[0]))
        return {name: torch.cat([p[i] for p in parts]) for i, name in enumerate(self.output_names)}

    def run(self, inputs: dict) -> dict:
        torch = self.torch
        out = self.run_torch({n: torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names})
        return {n: t.cpu().numpy() for n, t in out.items()}


def _positions(names) -> dict | None:
    """{name: i} when every name ends in ``__<i>`` (Triton's PyTorch backend convention), else None."""
    found = {}
    for name in names:
        _, sep, index = name.rpartition("__")
        if not sep or not index.isdigit():
            return None
        found[name] = int(index)
    return found


class TorchScriptEngine:
    """A TorchScript module (``torch.jit.load``) run as Triton's PyTorch backend runs it: the inputs go
    to ``forward`` by position (``<name>__<i>`` is argument i; else by forward's argument names when
    they are the inputs' names; else in the config's order) and the outputs come from the returned
    tensor, tuple or dict (``<name>__<i>`` is element i; a dict by name; else the config's order),
    each cast to its declared dtype (``output_dtypes``: name -> torch dtype name)."""

    def __init__(self, path: str, input_names, output_names, threads: int = 1, device: str = "cpu", output_dtypes=None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.device = torch.device(device)
        self.module = torch.jit.load(str(path), map_location=self.device).eval()
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        positions = _positions(self.input_names)
        arguments = [a.name for a in self.module.forward.schema.arguments[1:]]  # the first is self
        if positions is not None:
            self.order = sorted(self.input_names, key=positions.get)
        elif sorted(arguments) == sorted(self.input_names):
            self.order = arguments
        else:
            self.order = self.input_names
        positions = _positions(self.output_names)
        self.output_index = positions or {n: i for i, n in enumerate(self.output_names)}
        self.output_dtypes = {n: getattr(torch, d) for n, d in (output_dtypes or {}).items()}

    def run_torch(self, inputs: dict) -> dict:
        """Tensors in (any device), tensors of the declared dtypes out on the engine's device."""
        with self.torch.inference_mode():
            out = self.module(*[inputs[n].to(self.device) for n in self.order])
        if isinstance(out, dict):
            picked = {n: out[n] for n in self.output_names}
        else:
            out = (out,) if isinstance(out, self.torch.Tensor) else tuple(out)
            picked = {n: out[self.output_index[n]] for n in self.output_names}
        return {n: t.to(self.output_dtypes[n]) if n in self.output_dtypes else t for n, t in picked.items()}

    def run(self, inputs: dict) -> dict:
        torch = self.torch
        out = self.run_torch({n: torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names})
        return {n: t.cpu().numpy() for n, t in out.items()}


FIL_MODEL_TYPES = ("xgboost", "xgboost_json", "xgboost_ubj")  # the FIL model types that are XGBoost's


class FilEngine:
    """An XGBoost model answering as Triton's FIL backend does for the same config: the file read as
    ``model_type`` says (JSON, UBJSON or XGBoost's legacy binary), and per row, float32 in the
    declared ``output_shape``: with ``output_class`` (or ``is_classifier``) and ``predict_proba``, the
    probability of each class (a binary model: ``[1 - p, p]`` when two columns are declared, ``p``
    for one); with ``output_class`` alone, the class (binary: ``p > threshold``); otherwise the
    model's score (``predict``)."""

    def __init__(
        self,
        path: str,
        input_names,
        output_names,
        threads: int = 1,
        model_type: str = "xgboost_json",
        output_class: bool = False,
        predict_proba: bool = False,
        threshold: float = 0.5,
        output_shape=(1,),
    ):
        if model_type not in FIL_MODEL_TYPES:
            raise ValueError(f"FIL model_type {model_type!r} is not XGBoost's; known: {list(FIL_MODEL_TYPES)}")
        import xgboost as xgb

        with open(path, "rb") as fh:
            raw = fh.read()
        is_json = raw.lstrip()[:2] == b'{"'
        if is_json != (model_type == "xgboost_json"):
            raise ValueError(f"{path}: model_type {model_type!r}, but the file is {'' if is_json else 'not '}JSON")
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as err:
            first = str(err).strip().splitlines()[0]  # without xgboost's native stack trace
            raise ValueError(f"{path}: xgboost {xgb.__version__} cannot read it as {model_type}: {first}") from err
        self.booster.set_param({"nthread": int(threads) if threads else 0})
        self.objective = json.loads(self.booster.save_config())["learner"]["objective"]["name"]
        (self.input_name,) = input_names
        (self.output_name,) = output_names
        self.output_class, self.predict_proba = bool(output_class), bool(predict_proba)
        self.threshold = float(threshold)
        self.output_shape = tuple(int(d) for d in output_shape)

    def _probabilities(self, x):
        if self.objective == "multi:softmax":  # predicts the class: the probabilities from the margins
            margin = self.booster.inplace_predict(x, predict_type="margin")
            e = np.exp(margin - margin.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return self.booster.inplace_predict(x)  # (N,) P(class 1) for a binary model, (N, K) otherwise

    def run(self, inputs: dict) -> dict:
        x = inputs[self.input_name]
        if len(x) == 0:
            return {self.output_name: np.zeros((0, *[max(d, 1) for d in self.output_shape]), dtype=np.float32)}
        if self.output_class:
            p = self._probabilities(x)
            if not self.predict_proba:
                out = (p > self.threshold) if p.ndim == 1 else np.argmax(p, axis=1)
            elif p.ndim == 1 and self.output_shape[-1] == 2:
                out = np.stack([1.0 - p, p], axis=1)
            else:
                out = p
        else:
            out = self.booster.inplace_predict(x)
        return {self.output_name: np.asarray(out, dtype=np.float32).reshape(len(x), *self.output_shape)}


class NullEngine:
    """A benchmark device, not a model: every call answers float32 zeros, ``(rows, *shape)`` per
    output of ``output_shapes`` (output name -> per-row shape; a variable dimension, -1, answers 1),
    without reading ``path`` (it may name no file) and without computing anything.  A server running
    it answers at once: what it measures is the client and the server's own request handling."""

    def __init__(self, path: str, input_names, output_names, threads: int = 1, output_shapes: dict | None = None):
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        shapes = output_shapes or {}
        missing = [n for n in self.output_names if n not in shapes]
        if missing:
            raise ValueError(f"the null engine needs the per-row shape of every output; missing: {missing}")
        self.output_shapes = {n: tuple(max(int(d), 1) for d in shapes[n]) for n in self.output_names}

    def run(self, inputs: dict) -> dict:
        rows = len(inputs[self.input_names[0]])
        return {n: np.zeros((rows, *shape), dtype=np.float32) for n, shape in self.output_shapes.items()}


ENGINES = {
    "onnxruntime": OnnxEngine,
    "xgboost": XGBoostEngine,
    "torch": TorchEngine,
    "torchscript": TorchScriptEngine,
    "fil": FilEngine,
    "null": NullEngine,
}


def load_engine(kind: str, path: str, input_names, output_names, threads: int = 1, **options):
    """The engine ``kind`` for the file ``path``; ``options`` are the keywords of the engine's class
    (device, precision, compiled, max_rows, input_shapes for torch; output_shapes for null; ...)."""
    try:
        cls = ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine {kind!r}; known: {sorted(ENGINES)}") from None
    return cls(path, input_names, output_names, threads, **options)
