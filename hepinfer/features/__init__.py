"""Input builders: awkward jets and constituents -> the numpy tensors of each ModelSpec.

Pure functions, vectorised (no Python loop over jets or particles); they work on eager awkward
arrays and, called per partition, on dask-awkward.  ``build_inputs(model, jets, constituents)``
dispatches by the model's builder (its own name by default).

The builders read the fields once into flat numpy arrays (:mod:`~hepinfer.features.flat`: every
jet's particles one after the other), shared by all builders called on the same arrays, and write
straight into the output tensors; sorting, sums and argmax within jets are
:mod:`~hepinfer.features.segments`.  numpy suffices, no compiled kernel (numba): measured on one
core on the demo sample, ParticleNet's inputs cost about 7 µs per jet and 2-3 ms per call, the
BDT's 4 µs and the jet images' 8 µs per jet, half of which is the kernel zeroing the 49 kB float32
image of each jet.  The same expressions on awkward arrays (:mod:`~hepinfer.features.reference`,
which inputs with missing values go through) are the reference the tensors equal bit for bit.

Three builders are composed by their parameters (``builder_params``): ``particles`` (padded
per-particle features, :data:`~hepinfer.features.per_particle.PARTICLE_FEATURES`), ``image`` (jet
images, :data:`~hepinfer.features.images.IMAGE_CHANNELS`) and ``jet_variables`` (one row of jet
variables, :data:`~hepinfer.features.per_jet.JET_VARIABLES` or any jet field).  The built-in
models' builders are instances of them with fixed parameters.
"""

from __future__ import annotations

import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.features.base import placeholder, touch
from hepinfer.features.bdt import bdt_inputs
from hepinfer.features.common import is_typetracer, link_constituents
from hepinfer.features.images import IMAGE_CHANNELS, image, jet_images
from hepinfer.features.nanoaod_bdt import nanoaod_bdt_inputs
from hepinfer.features.particlenet import particlenet_inputs
from hepinfer.features.per_jet import JET_VARIABLES, NANOAOD_BDT_VARIABLES, jet_variables
from hepinfer.features.per_particle import PARTICLE_FEATURES, particles
from hepinfer.models import get_spec

BUILDERS = {
    "particlenet": particlenet_inputs,
    "resnet50": jet_images,
    "bdt": bdt_inputs,
    "bdt_nanoaod": nanoaod_bdt_inputs,
    "particles": particles,
    "image": image,
    "jet_variables": jet_variables,
}


def _builder(model):
    from hepinfer.models.checks import resolve_builder

    spec = get_spec(model)
    return spec, resolve_builder(spec)


def required_fields(model) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(jet fields, constituent fields) the builder of ``model`` (a name or a ModelSpec) reads with its
    ``builder_params`` (NanoAOD: FatJet_<f>, PFCands_<f>); None when unknown (no builder, or one
    without ``required_fields``)."""
    try:
        spec, fn = _builder(model)
    except ConfigError:
        return None
    fields = getattr(fn, "required_fields", None)
    if fields is None:
        return None
    jet, cons = fields(**spec.builder_params)
    return tuple(jet), tuple(cons)


def reads_constituents(model) -> bool:
    """Whether the builder of ``model`` reads the fat jets' PF candidates (False: the jet fields
    alone, which standard NanoAOD has); True when unknown (a builder outside hepinfer.features)."""
    fields = required_fields(model)
    return fields is None or bool(fields[1])


def build_inputs(model, jets, constituents):
    """The inputs of ``model`` (a name or a ModelSpec) for ``jets``: its builder (``spec.builder``, a
    name of BUILDERS or ``"package.module:function"``; by default the builder named like the model)
    called with ``spec.builder_params``.

    On typetracers (dask-awkward building its graph) the builder's columns are touched, from its
    ``touched_fields`` when it has them (else the builder itself is called, to touch what it reads),
    and empty arrays of the spec's input shapes come back, for every builder alike."""
    spec, fn = _builder(model)
    if not is_typetracer(jets, constituents):
        return fn(jets, constituents, **spec.builder_params)
    fields = getattr(fn, "touched_fields", None)
    if fields is None:
        fn(jets, constituents, **spec.builder_params)
    else:
        jet_fields, cons_fields = fields(**spec.builder_params)
        touch(jets, jet_fields, constituents, cons_fields)
    return placeholder({t.name: t.shape for t in spec.inputs}, {t.name: np.dtype(t.numpy_dtype) for t in spec.inputs})


__all__ = [
    "BUILDERS",
    "IMAGE_CHANNELS",
    "JET_VARIABLES",
    "NANOAOD_BDT_VARIABLES",
    "PARTICLE_FEATURES",
    "reads_constituents",
    "bdt_inputs",
    "build_inputs",
    "image",
    "jet_images",
    "jet_variables",
    "link_constituents",
    "particlenet_inputs",
    "particles",
    "required_fields",
]
