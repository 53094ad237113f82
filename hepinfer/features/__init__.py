"""Input builders: awkward jets and constituents -> the numpy tensors of each ModelSpec.

Pure functions, vectorised (no Python loop over jets or particles); they work on eager awkward
arrays and, called per partition, on dask-awkward.  ``build_inputs(model, jets, constituents)``
dispatches by the model's builder (its own name by default).
"""

from __future__ import annotations

from ..models import get_spec
from . import bdt, images, nanoaod_bdt, particlenet
from .bdt import bdt_inputs
from .common import link_constituents
from .images import jet_images
from .particlenet import particlenet_inputs

BUILDERS = {
    "particlenet": particlenet_inputs,
    "resnet50": jet_images,
    "bdt": bdt_inputs,
    "bdt_nanoaod": nanoaod_bdt.nanoaod_bdt_inputs,
}
# model -> (jet fields, constituent fields) its builder reads (NanoAOD: FatJet_<f>, PFCands_<f>)
REQUIRED_FIELDS = {
    "particlenet": (particlenet.JET_FIELDS, particlenet.PARTICLE_FIELDS),
    "resnet50": (images.JET_FIELDS, images.CONSTITUENT_FIELDS),
    "bdt": (bdt.JET_FIELDS, bdt.CONSTITUENT_FIELDS),
    "bdt_nanoaod": (nanoaod_bdt.JET_FIELDS, nanoaod_bdt.CONSTITUENT_FIELDS),  # FatJet branches only
}


def build_inputs(model, jets, constituents):
    """The inputs of ``model`` (a name or a ModelSpec) for ``jets``: its builder (``spec.builder``, a
    name of BUILDERS or ``"package.module:function"``; by default the builder named like the model)
    called with ``spec.builder_params``."""
    from ..models.checks import resolve_builder

    spec = get_spec(model)
    return resolve_builder(spec)(jets, constituents, **spec.builder_params)


__all__ = [
    "BUILDERS",
    "REQUIRED_FIELDS",
    "bdt_inputs",
    "build_inputs",
    "jet_images",
    "link_constituents",
    "particlenet_inputs",
]
