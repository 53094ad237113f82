"""The ``particles`` builder: per jet, its constituents sorted by a field (descending), the first
``max_particles`` kept, zero padded; per-particle features from :data:`PARTICLE_FEATURES`.

Outputs (float32, N jets): ``points`` (N, 2, P) = (deta, dphi) to the jet axis, ``features``
(N, len(features), P) in the order given, ``mask`` (N, 1, P) = 1 for a real particle.  Padded slots
are exactly zero in all three tensors; a jet without constituents is all zero.  The tensor names are
parameters (``points_name``, ``features_name``, ``mask_name``; "" leaves that tensor out).

ParticleNet (``particlenet``) is ``particles(features=PARTICLENET_FEATURES, max_particles=100)``:
CMS/weaver-style features with weaver's fixed affine scalings.

Each feature of the catalogue is one expression over :class:`ParticleQuantities`, evaluated on flat
numpy arrays (:mod:`hepinfer.features.flat`): every particle's features computed once in storage
order, then written straight into the padded tensors at (jet, place in the jet's sorted order);
particles past ``max_particles`` go to a scratch row that is not returned.  The same expressions on
awkward arrays (:func:`particles_on_awkward`) are the reference the values are tested
against: numpy applies the same float operations in the same order, so the tensors are bit for bit
the same.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import awkward as ak
import numpy as np

from hepinfer.features import base
from hepinfer.features.catalogues import PARTICLENET_FEATURES, PARTICLENET_MAX_PARTICLES
from hepinfer.features.common import energy, flat_jets, pad_to_numpy, require_fields, safe_log, safe_ratio, where
from hepinfer.features.flat import Unsupported, chunk


class Feature(NamedTuple):
    description: str
    jet_fields: tuple[str, ...]
    constituent_fields: tuple[str, ...]
    compute: Callable  # (ParticleQuantities) -> one value per particle


class ParticleQuantities(base.AroundTheAxis):
    """Intermediates shared by the features (computed once, when first needed).  Subclasses set
    ``c`` (the constituents' fields), ``jets`` (the jets' fields, aligned with ``c``), ``one`` (1
    per particle) and ``per_particle`` (a jet quantity aligned with ``c``)."""

    def flag(self, cond):
        return where(cond, self.one, 0.0)

    @cached_property
    def e(self):
        return energy(self.c.pt, self.c.eta, self.c.mass)

    @cached_property
    def jet_e(self):
        return energy(self.jets.pt, self.jets.eta, self.jets.mass)

    @cached_property
    def apid(self):
        return abs(self.c.pdgId)

    @cached_property
    def charged(self):
        return self.c.charge != 0

    @cached_property
    def lepton(self):
        return (self.apid == 11) | (self.apid == 13)


class _FlatParticles(ParticleQuantities):
    """The quantities on a Chunk's flat arrays: every particle, in storage order."""

    def __init__(self, chunk, sort_by: str):
        self.chunk = chunk
        self.c = chunk.particle
        self.jets = chunk.at_particles
        self.sort_by = sort_by

    @cached_property
    def one(self):
        return np.ones_like(self.c[self.sort_by])

    def per_particle(self, x):
        return x

    def flag(self, cond):  # where(cond, one, 0.0) is 1.0 / 0.0, the same float32 numbers
        return cond.astype(np.float32)

    @cached_property
    def jet_e(self):
        """Per jet with constituents (as the reference, which computes it per particle), then
        repeated: the same numbers, computed once per jet."""
        ch = self.chunk
        has = ch.counts > 0
        jet_e = energy(ch.jet_field("pt")[has], ch.jet_field("eta")[has], ch.jet_field("mass")[has])
        return np.repeat(jet_e, ch.counts[has])

    @property
    def deta(self):
        return self.chunk.deta

    @property
    def dphi(self):
        return self.chunk.dphi


_KIN = ("pt", "eta", "mass")
_ANG = ("eta", "phi")
PARTICLE_FEATURES: dict[str, Feature] = {
    # ParticleNet's 15, CMS / weaver style
    "log_pt": Feature("(log pT - 1.7) * 0.7", (), ("pt",), lambda p: (safe_log(p.c.pt) - 1.7) * 0.7),
    "log_e": Feature("(log E - 2.0) * 0.7", (), _KIN, lambda p: (safe_log(p.e) - 2.0) * 0.7),
    "log_pt_rel": Feature(
        "(log pT/pT_jet + 4.7) * 0.7", ("pt",), ("pt",), lambda p: (safe_log(p.c.pt / p.jets.pt) + 4.7) * 0.7
    ),
    "log_e_rel": Feature("(log E/E_jet + 4.7) * 0.7", _KIN, _KIN, lambda p: (safe_log(p.e / p.jet_e) + 4.7) * 0.7),
    "deta": Feature("eta - eta_jet", ("eta",), ("eta",), lambda p: p.deta),
    "dphi": Feature("phi - phi_jet, in [-pi, pi)", ("phi",), ("phi",), lambda p: p.dphi),
    "dr": Feature("(dR - 0.2) * 4.0, dR to the jet axis", _ANG, _ANG, lambda p: (np.hypot(p.deta, p.dphi) - 0.2) * 4.0),
    "charge": Feature("-1, 0, +1", (), ("charge",), lambda p: p.c.charge * p.one),
    "is_electron": Feature("1 for abs(pdgId) = 11", (), ("pdgId",), lambda p: p.flag(p.apid == 11)),
    "is_muon": Feature("1 for abs(pdgId) = 13", (), ("pdgId",), lambda p: p.flag(p.apid == 13)),
    "is_charged_hadron": Feature(
        "1 for a charged particle other than e, mu", (), ("charge", "pdgId"), lambda p: p.flag(p.charged & ~p.lepton)
    ),
    "is_neutral_hadron": Feature(
        "1 for a neutral particle other than a photon",
        (),
        ("charge", "pdgId"),
        lambda p: p.flag(~p.charged & (p.apid != 22)),
    ),
    "is_photon": Feature("1 for pdgId = 22", (), ("pdgId",), lambda p: p.flag(p.apid == 22)),
    "tanh_d0": Feature("tanh(d0 / cm)", (), ("d0",), lambda p: np.tanh(p.c.d0)),
    "tanh_dz": Feature("tanh(dz / cm)", (), ("dz",), lambda p: np.tanh(p.c.dz)),
    # unscaled basics
    "pt": Feature("pT (GeV)", (), ("pt",), lambda p: p.c.pt),
    "eta": Feature("eta", (), ("eta",), lambda p: p.c.eta),
    "phi": Feature("phi", (), ("phi",), lambda p: p.c.phi),
    "mass": Feature("mass (GeV)", (), ("mass",), lambda p: p.c.mass),
    "energy": Feature("E (GeV), from pT, eta, mass", (), _KIN, lambda p: p.e),
    "pt_rel": Feature(
        "pT / pT_jet (0 when pT_jet = 0)", ("pt",), ("pt",), lambda p: safe_ratio(p.c.pt, p.per_particle(p.jets.pt))
    ),
    "e_rel": Feature("E / E_jet (0 when E_jet = 0)", _KIN, _KIN, lambda p: safe_ratio(p.e, p.per_particle(p.jet_e))),
    "delta_r": Feature("dR to the jet axis, unscaled", _ANG, _ANG, lambda p: np.hypot(p.deta, p.dphi)),
    "d0": Feature("transverse impact parameter (cm)", (), ("d0",), lambda p: p.c.d0),
    "dz": Feature("longitudinal impact parameter (cm)", (), ("dz",), lambda p: p.c.dz),
    "pdg_id": Feature("pdgId", (), ("pdgId",), lambda p: p.c.pdgId),
}
DEFAULTS = dict(
    features=PARTICLENET_FEATURES,
    max_particles=PARTICLENET_MAX_PARTICLES,
    sort_by="pt",
    points_name="points",
    features_name="features",
    mask_name="mask",
)


def check_params(**params) -> dict:
    """The parameters (defaults filled in), checked; ConfigError names the bad one."""
    p = {**DEFAULTS, **params}
    return dict(
        features=base.names_from("features", p["features"], PARTICLE_FEATURES, "particle feature"),
        max_particles=base.positive_int("max_particles", p["max_particles"]),
        sort_by=base.field_name("sort_by", p["sort_by"]),
        **base.tensor_names({k: p[k] for k in ("points_name", "features_name", "mask_name")}, optional=True),
    )


def required_fields(**params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    p = check_params(**params)
    used = [PARTICLE_FEATURES[f] for f in p["features"] if p["features_name"]]
    if p["points_name"]:
        used += [PARTICLE_FEATURES["deta"], PARTICLE_FEATURES["dphi"]]
    jet = base.union(*(f.jet_fields for f in used))
    cons = base.union((p["sort_by"],), *(f.constituent_fields for f in used))
    return jet, cons


def output_shapes(**params) -> dict[str, tuple[int, ...]]:
    p = check_params(**params)
    n = p["max_particles"]
    shapes = {
        p["points_name"]: (2, n),
        p["features_name"]: (len(p["features"]), n),
        p["mask_name"]: (1, n),
    }
    return {name: shape for name, shape in shapes.items() if name}


def particles(
    jets,
    constituents,
    features=DEFAULTS["features"],
    max_particles: int = DEFAULTS["max_particles"],
    sort_by: str = "pt",
    points_name: str = "points",
    features_name: str = "features",
    mask_name: str = "mask",
) -> dict[str, np.ndarray]:
    """Padded per-particle tensors (see the module); float32, one row per jet in event order."""
    p = check_params(
        features=features,
        max_particles=max_particles,
        sort_by=sort_by,
        points_name=points_name,
        features_name=features_name,
        mask_name=mask_name,
    )
    jet_fields, cons_fields = required_fields(**p)
    flat = flat_jets(jets, constituents)
    require_fields(flat[0], jet_fields, "jets")
    require_fields(flat[1], cons_fields, "constituents")
    try:
        return _build(chunk(jets, constituents, flat), p)
    except Unsupported:  # None among the values, a field that is not numbers: the awkward path
        return particles_on_awkward(*flat, **p)


def _build(ch, p: dict) -> dict[str, np.ndarray]:
    size = p["max_particles"]
    ctx = ch.view(_FlatParticles, p["sort_by"])
    rank = ch.rank(p["sort_by"])
    kept = rank < size
    # (jet, place) of each particle in the padded tensors; past max_particles: the scratch row
    slot = (np.where(kept, ch.jet_index, ch.n_jets), np.where(kept, rank, 0))
    out = {}
    if p["points_name"]:
        out[p["points_name"]] = _padded(ch, slot, size, [ctx.deta, ctx.dphi])
    if p["features_name"]:
        # the reference multiplies the padded float32 features by the mask: x * 1, which leaves
        # every value as it is but a signalling NaN of a field read as it is (made quiet)
        values = [_float32(ch, PARTICLE_FEATURES[f].compute(ctx), quiet=True) for f in p["features"]]
        out[p["features_name"]] = _padded(ch, slot, size, values)
    if p["mask_name"]:
        out[p["mask_name"]] = _padded(ch, slot, size, [ctx.one])
    return out


def _float32(ch, x, quiet: bool = False) -> np.ndarray:
    """``x`` as float32; times 1 when ``quiet`` and ``x`` is a float field as read."""
    if quiet and x.dtype.kind == "f" and ch.is_field(x):
        return x.astype(np.float32, copy=False) * np.float32(1.0)
    return x.astype(np.float32, copy=False)


_BLOCK_BYTES = 1 << 22  # the tensor rows written by one pass over a block of jets stay in cache


def _padded(ch, slot, size: int, values: list) -> np.ndarray:
    """(jets, len(values), size) float32: ``values[k][i]`` (one per particle) at ``slot`` = (jet,
    place) of row k.  Jets are written a block at a time (a few MB of rows), all rows of a
    block before the next: one pass per row over the whole tensor would leave the cache each time."""
    n, rows = ch.n_jets, len(values)
    t = np.zeros((n + 1, rows, size), dtype=np.float32)
    flat = t.reshape(-1)
    values = [_float32(ch, x) for x in values]
    at = slot[0] * (rows * size) + slot[1]
    block = max(1, _BLOCK_BYTES // (rows * size * 4))
    for first in range(0, max(n, 1), block):
        lo, hi = ch.offsets[first], ch.offsets[min(first + block, n)]
        where_ = at[lo:hi]
        for k, x in enumerate(values):
            flat[where_ + k * size] = x[lo:hi]
    return t[:n]


class AwkwardParticles(ParticleQuantities):
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


def particles_on_awkward(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The tensors from the features' expressions on awkward arrays, for inputs the flat path does
    not take (``jets`` / ``constituents`` without the event axis; ``p``: the checked parameters)."""
    ctx = AwkwardParticles(jets, constituents, p["sort_by"])
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


particles.check_params = check_params
particles.required_fields = required_fields
particles.touched_fields = required_fields
particles.output_shapes = output_shapes
