"""Input builders: awkward jets and constituents -> the numpy tensors of each ModelSpec.

Pure functions, vectorised (no Python loop over jets or particles); they work on eager awkward
arrays and, called per partition, on dask-awkward.  ``build_inputs(model, jets, constituents)``
dispatches by model name.
"""

from __future__ import annotations

from ..models import get_spec
from . import bdt, images, particlenet
from .bdt import bdt_inputs
from .common import link_constituents
from .images import jet_images
from .particlenet import particlenet_inputs

BUILDERS = {"particlenet": particlenet_inputs, "resnet50": jet_images, "bdt": bdt_inputs}
# model -> (jet fields, constituent fields) its builder reads (NanoAOD: FatJet_<f>, PFCands_<f>)
REQUIRED_FIELDS = {
    "particlenet": (particlenet.JET_FIELDS, particlenet.PARTICLE_FIELDS),
    "resnet50": (images.JET_FIELDS, images.CONSTITUENT_FIELDS),
    "bdt": (bdt.JET_FIELDS, bdt.CONSTITUENT_FIELDS),
}


def build_inputs(model: str, jets, constituents):
    return BUILDERS[get_spec(model).name](jets, constituents)


__all__ = [
    "BUILDERS",
    "REQUIRED_FIELDS",
    "bdt_inputs",
    "build_inputs",
    "jet_images",
    "link_constituents",
    "particlenet_inputs",
]
