"""ParticleNet inputs: per jet, constituents sorted by pT, the first 100 kept, zero padded.

``points`` = (deta, dphi) to the jet axis; ``mask`` = 1 for a real particle; ``features`` (15, in
the order of ``PARTICLENET_FEATURES``), CMS/weaver style with weaver's fixed affine scalings::

    log_pt      (log pT - 1.7) * 0.7          log_e      (log E - 2.0) * 0.7
    log_pt_rel  (log pT/pT_jet + 4.7) * 0.7   log_e_rel  (log E/E_jet + 4.7) * 0.7
    deta, dphi  unscaled                      dr         (dR - 0.2) * 4.0
    charge      -1, 0, +1
    is_electron |pdgId| = 11, is_muon 13, is_photon 22, is_charged_hadron: other charged,
    is_neutral_hadron: other neutral
    tanh_d0, tanh_dz   tanh of the impact parameters in cm

Padded slots are exactly zero in all three tensors; a jet without constituents is all zero.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..models import PARTICLENET_FEATURES, PARTICLENET_MAX_PARTICLES
from .common import (
    delta_phi,
    energy,
    flat_jets,
    is_typetracer,
    pad_to_numpy,
    require_fields,
    safe_log,
    typetracer_placeholder,
)

JET_FIELDS = ("pt", "eta", "phi", "mass")
PARTICLE_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz")


def particle_features(jets, constituents) -> dict:
    """Jagged per-particle features (jets x particles), sorted by pT, before padding."""
    require_fields(jets, JET_FIELDS, "jets")
    require_fields(constituents, PARTICLE_FIELDS, "constituents")
    c = constituents[ak.argsort(constituents.pt, axis=1, ascending=False)]
    jet_e = energy(jets.pt, jets.eta, jets.mass)
    e = energy(c.pt, c.eta, c.mass)
    deta = c.eta - jets.eta
    dphi = delta_phi(c.phi, jets.phi)
    apid = abs(c.pdgId)
    charged = c.charge != 0
    lepton = (apid == 11) | (apid == 13)
    one = ak.ones_like(c.pt)
    flag = lambda cond: ak.where(cond, one, 0.0)  # noqa: E731
    return {
        "log_pt": (safe_log(c.pt) - 1.7) * 0.7,
        "log_e": (safe_log(e) - 2.0) * 0.7,
        "log_pt_rel": (safe_log(c.pt / jets.pt) + 4.7) * 0.7,
        "log_e_rel": (safe_log(e / jet_e) + 4.7) * 0.7,
        "deta": deta,
        "dphi": dphi,
        "dr": (np.hypot(deta, dphi) - 0.2) * 4.0,
        "charge": c.charge * one,
        "is_electron": flag(apid == 11),
        "is_muon": flag(apid == 13),
        "is_charged_hadron": flag(charged & ~lepton),
        "is_neutral_hadron": flag(~charged & (apid != 22)),
        "is_photon": flag(apid == 22),
        "tanh_d0": np.tanh(c.d0),
        "tanh_dz": np.tanh(c.dz),
    }


def particlenet_inputs(jets, constituents, max_particles: int = PARTICLENET_MAX_PARTICLES) -> dict[str, np.ndarray]:
    """``{"points": (N,2,P), "features": (N,15,P), "mask": (N,1,P)}`` float32 for N jets."""
    if is_typetracer(jets, constituents):
        return typetracer_placeholder("particlenet", jets, JET_FIELDS, constituents, PARTICLE_FIELDS)
    jets, constituents = flat_jets(jets, constituents)
    feats = particle_features(jets, constituents)
    n = len(jets)
    features = np.stack([pad_to_numpy(feats[name], max_particles) for name in PARTICLENET_FEATURES], axis=1)
    mask = pad_to_numpy(ak.ones_like(feats["deta"]), max_particles)[:, None, :]
    points = np.stack([pad_to_numpy(feats["deta"], max_particles), pad_to_numpy(feats["dphi"], max_particles)], axis=1)
    features = features.reshape(n, len(PARTICLENET_FEATURES), max_particles)
    return {
        "points": np.ascontiguousarray(points, dtype=np.float32),
        "features": np.ascontiguousarray(features * mask, dtype=np.float32),
        "mask": np.ascontiguousarray(mask, dtype=np.float32),
    }
