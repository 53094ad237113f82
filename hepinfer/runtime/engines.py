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

The null engine is a benchmark device: it reads no file and answers zeros of the declared output
shapes at once, so a server running it costs only its own request handling (``hepinfer serve
--engine null``; ``hepinfer bench client`` measures how fast one analysis worker can feed it).
"""

from __future__ import annotations

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

    def run(self, inputs: dict) -> dict:
        feeds = {n: inputs[n] for n in self.input_names}
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


ENGINES = {"onnxruntime": OnnxEngine, "xgboost": XGBoostEngine, "torch": TorchEngine, "null": NullEngine}


def load_engine(kind: str, path: str, input_names, output_names, threads: int = 1, **options):
    """The engine ``kind`` for the file ``path``; ``options`` (device, precision, compiled, max_rows,
    input_shapes) are the torch engine's, ``output_shapes`` the null engine's."""
    try:
        cls = ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine {kind!r}; known: {sorted(ENGINES)}") from None
    return cls(path, input_names, output_names, threads, **options)
