"""Input builders: awkward jets and constituents -> the numpy tensors of each ModelSpec.

Pure functions, vectorised (no Python loop over jets or particles), on eager awkward arrays: whether
a chunk is eager, a typetracer or a dask collection is decided once, by the caller that receives it
(:func:`~hepinfer.features.common.array_kind`; the coffea plug-in), and a typetracer only has the
builder's columns touched (:func:`~hepinfer.features.builders.touch_columns`).  A model's inputs
come from its resolved model (:meth:`hepinfer.models.resolved.Model.build_inputs`), which calls its
builder (:data:`~hepinfer.features.builders.BUILDERS`) with the declared ``builder_params``.

The builders read the fields once into flat numpy arrays (:mod:`~hepinfer.features.flat`: every
jet's particles one after the other), shared by all builders called on the same arrays, and write
straight into the output tensors; sorting, sums and argmax within jets are
:mod:`~hepinfer.features.segments`.  numpy suffices, no compiled kernel (numba): what each builder
costs per jet and per call is in the performance guide (``hepinfer bench client``).  Inputs with
missing values go through each builder's awkward path, the same expressions on awkward arrays;
that awkward path (``particles_on_awkward``, ``image_on_awkward``, ``jet_variables_on_awkward``) is
the test oracle the tensors equal bit for bit.

Three builders are composed by their parameters (``builder_params``): ``particles`` (padded
per-particle features, :data:`~hepinfer.features.per_particle.PARTICLE_FEATURES`), ``image`` (jet
images, :data:`~hepinfer.features.images.IMAGE_CHANNELS`) and ``jet_variables`` (one row of jet
variables, :data:`~hepinfer.features.per_jet.JET_VARIABLES` or any jet field).  The built-in
models' builders are instances of them with fixed parameters (:mod:`~hepinfer.features.catalogues`).

This package's names are imported on first use: the catalogues need no awkward, so the model
declarations read them in a client-only install.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "BUILDERS": "builders",
    "IMAGE_CHANNELS": "images",
    "image": "images",
    "jet_images": "images",
    "JET_VARIABLES": "per_jet",
    "NANOAOD_BDT_VARIABLES": "per_jet",
    "jet_variables": "per_jet",
    "PARTICLE_FEATURES": "per_particle",
    "particles": "per_particle",
    "bdt_inputs": "bdt_builder",
    "nanoaod_bdt_inputs": "nanoaod_bdt_builder",
    "particlenet_inputs": "particlenet_builder",
    "link_constituents": "common",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_WHERE)
