"""hepinfer: ML inference for collider analyses, locally or as a service on NVIDIA Triton.

Heavy dependencies (onnxruntime, tritonclient, torch) are imported on first use, not here.
"""

from __future__ import annotations

from hepinfer.config import InferenceConfig
from hepinfer.errors import (
    ArtefactMissing,
    ConfigError,
    HepinferError,
    InferenceTimeout,
    InputMismatch,
    ModelNotFound,
    ServerError,
    ServerUnavailable,
)
from hepinfer.models import SPECS, ModelSpec, TensorSpec, get_spec
from hepinfer.scorer import Scorer
from hepinfer.session import Session
from hepinfer.urls import TritonUrl


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hepinfer")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Register a user model in ``SPECS`` (checked first; see :mod:`hepinfer.models.registry`)."""
    from hepinfer.models.registry import register

    return register(spec, replace=replace)


def serve(models=None, **kwargs):
    """Start the embedded Triton server (see :func:`hepinfer.serving.server.serve`)."""
    from hepinfer.serving.server import serve as _serve

    return _serve(models, **kwargs)


__all__ = [
    "ArtefactMissing",
    "ConfigError",
    "HepinferError",
    "InferenceConfig",
    "InferenceTimeout",
    "InputMismatch",
    "ModelNotFound",
    "ModelSpec",
    "SPECS",
    "Scorer",
    "ServerError",
    "Session",
    "ServerUnavailable",
    "TensorSpec",
    "TritonUrl",
    "__version__",
    "get_spec",
    "register_model",
    "serve",
]
