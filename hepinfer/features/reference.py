"""The builders on awkward arrays: the reference the flat (numpy) builders are tested against, and
what they run on inputs the flat path does not take (missing values, fields that are not numbers).

Each takes jets and constituents without the event axis (:func:`~hepinfer.features.common.flat_jets`)
and the builder's checked parameters, and evaluates the catalogues' expressions on awkward arrays,
with awkward's own sort, sums and argmax.
"""

from __future__ import annotations

from functools import cached_property

import awkward as ak
import numpy as np

from hepinfer.errors import InputMismatch
from hepinfer.features.common import delta_phi, pad_to_numpy
from hepinfer.features.images import IMAGE_CHANNELS
from hepinfer.features.per_jet import JetSummaries, _variable
from hepinfer.features.per_particle import PARTICLE_FEATURES, ParticleQuantities


class _Particles(ParticleQuantities):
    """The constituents sorted within their jet, awkward arrays."""

    def __init__(self, jets, constituents, sort_by: str):
        self.jets = jets
        self.c = constituents[ak.argsort(constituents[sort_by], axis=1, ascending=False)]
        self.sort_by = sort_by

    @cached_property
    def one(self):
        return ak.ones_like(self.c[self.sort_by])

    def per_particle(self, x):
        return ak.broadcast_arrays(x, self.c[self.sort_by])[0]


def particles_reference(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The ``particles`` builder's tensors (``p``: its checked parameters)."""
    ctx = _Particles(jets, constituents, p["sort_by"])
    n, size = len(jets), p["max_particles"]
    mask = pad_to_numpy(ctx.one, size)[:, None, :]
    out = {}
    if p["points_name"]:
        points = np.stack([pad_to_numpy(ctx.deta, size), pad_to_numpy(ctx.dphi, size)], axis=1)
        out[p["points_name"]] = np.ascontiguousarray(points, dtype=np.float32)
    if p["features_name"]:
        names = p["features"]
        x = np.stack([pad_to_numpy(PARTICLE_FEATURES[f].compute(ctx), size) for f in names], axis=1)
        x = x.reshape(n, len(names), size)
        out[p["features_name"]] = np.ascontiguousarray(x * mask, dtype=np.float32)
    if p["mask_name"]:
        out[p["mask_name"]] = np.ascontiguousarray(mask, dtype=np.float32)
    return out


class _Jets(JetSummaries):
    """The summaries with awkward's reducers."""

    def __init__(self, jets, constituents):
        self.jets, self.c = jets, constituents

    def sum(self, x):
        return ak.sum(x, axis=1)

    @cached_property
    def lead(self):
        return ak.argmax(self.c.pt, axis=1, keepdims=True)

    def at_lead(self, x):
        return ak.fill_none(ak.firsts(x[self.lead]), 0.0)

    def n_constituents(self):
        return self.jets.nConstituents if "nConstituents" in ak.fields(self.jets) else ak.num(self.c, axis=1)


def jet_variables_reference(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The ``jet_variables`` builder's tensor (``p``: its checked parameters)."""
    ctx = _Jets(jets, constituents)
    names = p["variables"]
    columns = [ak.to_numpy(_variable(name).compute(ctx)) for name in names]
    for name, col in zip(names, columns):
        if col.ndim != 1:
            raise InputMismatch(f"jet variable {name!r} is not one number per jet (shape {col.shape})")
    x = np.stack([col.astype(np.float64) for col in columns], axis=1)
    return {p["input_name"]: x.astype(np.float32).reshape(len(jets), len(names))}


def image_reference(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The ``image`` builder's tensor (``p``: its checked parameters): a dense float64 image per
    channel filled with ``np.bincount``."""
    channels, pixels, half_width = p["channels"], p["pixels"], p["half_width"]
    n = len(jets)
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    jet_index = np.repeat(np.arange(n), counts)
    deta = ak.to_numpy(ak.flatten(constituents.eta - jets.eta)).astype(np.float64)
    dphi = ak.to_numpy(ak.flatten(delta_phi(constituents.phi, jets.phi))).astype(np.float64)
    scale = pixels / (2 * half_width)
    row = np.floor((deta + half_width) * scale).astype(np.int64)
    col = np.floor((dphi + half_width) * scale).astype(np.int64)
    inside = (row >= 0) & (row < pixels) & (col >= 0) & (col < pixels)
    plane = pixels * pixels
    pixel = jet_index * plane + row * pixels + col
    pt_frac = charged = None
    img = np.zeros((n, len(channels), pixels, pixels), dtype=np.float64)
    for k, name in enumerate(channels):
        channel = IMAGE_CHANNELS[name]
        sel = inside
        if channel.charge is not None:
            if charged is None:
                charged = ak.to_numpy(ak.flatten(constituents.charge != 0))
            sel = inside & (charged if channel.charge else ~charged)
        weights = None
        if channel.weighted:
            if pt_frac is None:
                pt_frac = ak.to_numpy(ak.flatten(constituents.pt / jets.pt)).astype(np.float64)
            weights = pt_frac[sel]
        img[:, k] = np.bincount(pixel[sel], weights=weights, minlength=n * plane).reshape(n, pixels, pixels)
    return {p["images_name"]: img.astype(np.float32)}
