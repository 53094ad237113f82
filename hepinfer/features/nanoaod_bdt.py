"""Variables of ``bdt_nanoaod``, the BDT for standard NanoAOD: FatJet branches only, no PF candidates.

    pt, eta, mass, msoftdrop                       FatJet branches
    tau21, tau32, tau43                            N-subjettiness ratios
    n2b1, n3b1                                     energy-correlation ratios (FatJet branches)
    mass_over_pt, msoftdrop_over_pt                mass / pT, soft-drop mass / pT

Every variable comes from branches that NanoAOD has written for its fat jets since v9, so the model
scores standard NanoAOD, PFNano (with or without ``FatJet_nConstituents``) and RNTuple files alike.
``FatJet_nConstituents`` is left out on purpose: older NanoAOD lack it, and the count depends most
of all on what a "particle" is (the generator's visible particles, CMS's PUPPI candidates).
Ratios with a zero denominator are 0 (no NaN or inf leaves the builder).  The constituents argument
is accepted for the common builder signature and ignored (it may be None).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..models import get_spec
from .common import is_typetracer, plain, require_fields, safe_ratio, typetracer_placeholder

MODEL = "bdt_nanoaod"
JET_FIELDS = ("pt", "eta", "mass", "msoftdrop", "tau1", "tau2", "tau3", "tau4", "n2b1", "n3b1")
CONSTITUENT_FIELDS: tuple[str, ...] = ()


def nanoaod_bdt_inputs(jets, constituents=None) -> dict[str, np.ndarray]:
    """``{"input__0": (N, 11)}`` float32, one row per jet in event order."""
    if is_typetracer(jets):
        return typetracer_placeholder(MODEL, jets, JET_FIELDS, jets, ())
    jets = plain(jets)
    if jets.ndim == 2:
        jets = ak.flatten(jets, axis=1)
    require_fields(jets, JET_FIELDS, "jets")
    columns = {
        "pt": jets.pt,
        "eta": jets.eta,
        "mass": jets.mass,
        "msoftdrop": jets.msoftdrop,
        "tau21": safe_ratio(jets.tau2, jets.tau1),
        "tau32": safe_ratio(jets.tau3, jets.tau2),
        "tau43": safe_ratio(jets.tau4, jets.tau3),
        "n2b1": jets.n2b1,
        "n3b1": jets.n3b1,
        "mass_over_pt": safe_ratio(jets.mass, jets.pt),
        "msoftdrop_over_pt": safe_ratio(jets.msoftdrop, jets.pt),
    }
    features = tuple(get_spec(MODEL).extra["features"])
    assert tuple(columns) == features
    x = np.stack([ak.to_numpy(columns[name]).astype(np.float64) for name in features], axis=1)
    # non-finite values from the branches are left in: the scoring layer replaces and counts them
    return {"input__0": x.astype(np.float32).reshape(len(jets), len(features))}
