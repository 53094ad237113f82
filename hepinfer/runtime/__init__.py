"""Runtimes evaluate a model on a dict of numpy arrays.  Both satisfy :class:`Runtime`.

``local``  -> :class:`hepinfer.runtime.local.LocalRuntime` (onnxruntime / xgboost in this process)
``triton`` -> :class:`hepinfer.runtime.triton.TritonRuntime` (tritonclient to a Triton server)

Chosen by name; the module is imported on first use so a client-only install never imports
onnxruntime and a local-only install never imports tritonclient.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from hepinfer.errors import ConfigError

RUNTIMES = {
    "local": ("hepinfer.runtime.local", "LocalRuntime", "local"),
    "triton": ("hepinfer.runtime.triton", "TritonRuntime", "client"),
}


@runtime_checkable
class Runtime(Protocol):
    spec: object

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def get_runtime_class(name: str):
    try:
        module, attr, extra = RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; known runtimes: {', '.join(RUNTIMES)}") from None
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise ConfigError(
            f"the {name!r} runtime needs packages that are not installed ({err.name}): pip install 'hepinfer[{extra}]'"
        ) from err


def empty_outputs(spec) -> dict[str, np.ndarray]:
    """Outputs of a zero-row batch, without calling any engine."""
    return {t.name: np.zeros((0, *[max(d, 0) for d in t.shape]), dtype=t.numpy_dtype) for t in spec.outputs}


def split_rows(n: int, step: int):
    """Row slices covering ``range(n)``: the fewest pieces of at most ``step`` rows, their sizes equal
    to one row (:func:`hepinfer.runtime.pieces.balanced_slices`); never padded."""
    from hepinfer.runtime.pieces import balanced_slices

    yield from balanced_slices(n, step)
