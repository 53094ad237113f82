"""ParticleNet inputs: the ``particles`` builder with ParticleNet's 15 features and 100 particles.

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

import numpy as np

from hepinfer.features.base import instance
from hepinfer.features.catalogues import PARTICLENET_FEATURES, PARTICLENET_MAX_PARTICLES
from hepinfer.features.per_particle import particles

PARAMS = dict(features=PARTICLENET_FEATURES)


def particlenet_inputs(jets, constituents, max_particles: int = PARTICLENET_MAX_PARTICLES) -> dict[str, np.ndarray]:
    """``{"points": (N,2,P), "features": (N,15,P), "mask": (N,1,P)}`` float32 for N jets."""
    return particles(jets, constituents, max_particles=max_particles, **PARAMS)


instance(particlenet_inputs, particles, **PARAMS)
JET_FIELDS, PARTICLE_FIELDS = particlenet_inputs.required_fields()
