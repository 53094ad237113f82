"""The built-in builders' fixed parameters: ParticleNet's particle features, the BDTs' jet
variables, the jet images' channels and size.

Names of the builders' catalogues (:data:`~hepinfer.features.per_particle.PARTICLE_FEATURES`,
:data:`~hepinfer.features.per_jet.JET_VARIABLES`, :data:`~hepinfer.features.images.IMAGE_CHANNELS`),
in tensor order.  Plain tuples, importable without awkward: the built-in model declarations
(:mod:`hepinfer.models`) read them for their tensor shapes.
"""

from __future__ import annotations

# Per-particle features of ParticleNet, in the CMS / weaver style (hepinfer.features.particlenet_builder computes them).
PARTICLENET_FEATURES = (
    "log_pt",
    "log_e",
    "log_pt_rel",
    "log_e_rel",
    "deta",
    "dphi",
    "dr",
    "charge",
    "is_electron",
    "is_muon",
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "tanh_d0",
    "tanh_dz",
)
PARTICLENET_MAX_PARTICLES = 100

# Jet image: channels x eta-bins x phi-bins around the jet axis, |deta|,|dphi| < 0.8 (R of the jet).
JET_IMAGE_CHANNELS = ("pt_charged", "pt_neutral", "multiplicity")
JET_IMAGE_PIXELS = 64
JET_IMAGE_HALF_WIDTH = 0.8

# BDT jet-level variables (standard NanoAOD FatJet branches + constituent summaries).
BDT_FEATURES = (
    "pt",
    "eta",
    "mass",
    "msoftdrop",
    "tau21",
    "tau32",
    "tau43",
    "n2b1",
    "n3b1",
    "n_constituents",
    "n_charged",
    "n_neutral",
    "pt_frac_leading",
    "pt_frac_charged",
    "girth",
    "pt_dispersion",
    "width_eta",
    "width_phi",
    "lead_dr",
    "mass_over_pt",
)
# NanoAOD BDT: FatJet branches of standard NanoAOD only (no PF candidates)
NANOAOD_BDT_FEATURES = (
    "pt",
    "eta",
    "mass",
    "msoftdrop",
    "tau21",
    "tau32",
    "tau43",
    "mass_over_pt",
    "msoftdrop_over_pt",
)
