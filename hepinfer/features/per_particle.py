"""The ``particles`` builder: per jet, its constituents sorted by a field (descending), the first
``max_particles`` kept, zero padded; per-particle features from :data:`PARTICLE_FEATURES`.

Outputs (float32, N jets): ``points`` (N, 2, P) = (deta, dphi) to the jet axis, ``features``
(N, len(features), P) in the order given, ``mask`` (N, 1, P) = 1 for a real particle.  Padded slots
are exactly zero in all three tensors; a jet without constituents is all zero.  The tensor names are
parameters (``points_name``, ``features_name``, ``mask_name``; "" leaves that tensor out).

ParticleNet (``particlenet``) is ``particles(features=PARTICLENET_FEATURES, max_particles=100)``:
CMS/weaver-style features with weaver's fixed affine scalings.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import awkward as ak
import numpy as np

from ..models import PARTICLENET_FEATURES, PARTICLENET_MAX_PARTICLES
from . import base
from .common import energy, flat_jets, is_typetracer, pad_to_numpy, require_fields, safe_log, safe_ratio


class Feature(NamedTuple):
    description: str
    jet_fields: tuple[str, ...]
    constituent_fields: tuple[str, ...]
    compute: Callable  # (_Particles) -> jets x particles


class _Particles(base.AroundTheAxis):
    """Intermediates shared by the features of one call (computed once, when first needed)."""

    def __init__(self, jets, constituents, sort_by: str):
        self.jets = jets
        self.c = constituents[ak.argsort(constituents[sort_by], axis=1, ascending=False)]
        self.sort_by = sort_by

    @cached_property
    def one(self):
        return ak.ones_like(self.c[self.sort_by])

    def flag(self, cond):
        return ak.where(cond, self.one, 0.0)

    def per_particle(self, x):
        """A per-jet quantity broadcast to the jet's particles."""
        return ak.broadcast_arrays(x, self.c[self.sort_by])[0]

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
    if is_typetracer(jets, constituents):
        base.touch(jets, jet_fields, constituents, cons_fields)
        return base.placeholder(output_shapes(**p))
    jets, constituents = flat_jets(jets, constituents)
    require_fields(jets, jet_fields, "jets")
    require_fields(constituents, cons_fields, "constituents")
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


particles.check_params = check_params
particles.required_fields = required_fields
particles.touched_fields = required_fields
particles.output_shapes = output_shapes
