"""The models.  ``SPECS`` is the registry (:class:`~hepinfer.models.registry.Registry`: the built-in
models of :mod:`hepinfer.models.builtin_specs` and the user's); :func:`get_spec` looks a model up by
name, :func:`hepinfer.models.resolved.resolve` gives the resolved model that travels inward.

Torch definitions and the artefact builder (``architectures/``) are build-time only and import
torch lazily; nothing here imports torch.
"""

from __future__ import annotations

from hepinfer.errors import ModelNotFound
from hepinfer.models.builtin_specs import JET_IMAGE_MODELS, PT_BIN_EDGES_GEV, TAGGER_DOMAIN
from hepinfer.models.registry import SPECS
from hepinfer.models.spec import Domain, ModelSpec, TensorSpec


def get_spec(model: str | ModelSpec) -> ModelSpec:
    """Return the ModelSpec of ``model``; an unknown name lists the known ones."""
    if isinstance(model, ModelSpec):
        return model
    try:
        return SPECS[model]
    except (KeyError, TypeError):
        raise ModelNotFound(f"unknown model {model!r}; known models: {', '.join(sorted(SPECS))}") from None


__all__ = [
    "SPECS",
    "Domain",
    "ModelSpec",
    "TAGGER_DOMAIN",
    "PT_BIN_EDGES_GEV",
    "TensorSpec",
    "get_spec",
    "JET_IMAGE_MODELS",
]
