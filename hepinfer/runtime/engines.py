"""Model engines: the code that actually evaluates a model file.

This module is deliberately self-contained (numpy, onnxruntime, xgboost; no hepinfer imports): the
embedded Triton server copies it next to its ``model.py`` and runs the very same code, so local and
remote scores come from one implementation and agree to float precision.
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


ENGINES = {"onnxruntime": OnnxEngine, "xgboost": XGBoostEngine}


def load_engine(kind: str, path: str, input_names, output_names, threads: int = 1):
    try:
        cls = ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine {kind!r}; known: {sorted(ENGINES)}") from None
    return cls(path, input_names, output_names, threads)
