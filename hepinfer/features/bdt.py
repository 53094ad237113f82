"""BDT jet variables (``BDT_FEATURES``, 20): standard NanoAOD FatJet branches plus constituent
summaries.  Ratios with a zero denominator are 0 (no NaN or inf leaves the builder).

    pt, eta, mass, msoftdrop                       FatJet branches
    tau21, tau32, tau43                            N-subjettiness ratios
    n2b1, n3b1                                     energy-correlation ratios (FatJet branches)
    n_constituents                                 FatJet_nConstituents (or counted)
    n_charged, n_neutral                           constituent counts
    pt_frac_leading                                leading constituent pT / jet pT
    pt_frac_charged                                sum of charged pT / sum of pT
    girth                                          sum pT_i dR_i / jet pT
    pt_dispersion                                  sqrt(sum pT_i^2) / sum pT_i
    width_eta, width_phi                           pT-weighted RMS of deta, dphi
    lead_dr                                        dR of the leading constituent to the axis
    mass_over_pt                                   mass / pT
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..models import BDT_FEATURES
from .common import delta_phi, flat_jets, is_typetracer, require_fields, safe_ratio, typetracer_placeholder

JET_FIELDS = ("pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3", "tau4", "n2b1", "n3b1")
CONSTITUENT_FIELDS = ("pt", "eta", "phi", "charge")


def bdt_inputs(jets, constituents) -> dict[str, np.ndarray]:
    """``{"input__0": (N, 20)}`` float32."""
    if is_typetracer(jets, constituents):
        return typetracer_placeholder("bdt", jets, JET_FIELDS + ("nConstituents",), constituents, CONSTITUENT_FIELDS)
    jets, constituents = flat_jets(jets, constituents)
    require_fields(jets, JET_FIELDS, "jets")
    require_fields(constituents, CONSTITUENT_FIELDS, "constituents")
    c = constituents
    deta = c.eta - jets.eta
    dphi = delta_phi(c.phi, jets.phi)
    dr = np.hypot(deta, dphi)
    sum_pt = ak.sum(c.pt, axis=1)
    charged = c.charge != 0
    lead = ak.argmax(c.pt, axis=1, keepdims=True)
    lead_pt = ak.fill_none(ak.firsts(c.pt[lead]), 0.0)
    lead_dr = ak.fill_none(ak.firsts(dr[lead]), 0.0)
    mean_eta = safe_ratio(ak.sum(c.pt * deta, axis=1), sum_pt)
    mean_phi = safe_ratio(ak.sum(c.pt * dphi, axis=1), sum_pt)
    var_eta = safe_ratio(ak.sum(c.pt * deta**2, axis=1), sum_pt) - mean_eta**2
    var_phi = safe_ratio(ak.sum(c.pt * dphi**2, axis=1), sum_pt) - mean_phi**2
    n_const = jets.nConstituents if "nConstituents" in ak.fields(jets) else ak.num(c, axis=1)
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
        "n_constituents": n_const,
        "n_charged": ak.sum(charged, axis=1),
        "n_neutral": ak.sum(~charged, axis=1),
        "pt_frac_leading": safe_ratio(lead_pt, jets.pt),
        "pt_frac_charged": safe_ratio(ak.sum(ak.where(charged, c.pt, 0.0), axis=1), sum_pt),
        "girth": safe_ratio(ak.sum(c.pt * dr, axis=1), jets.pt),
        "pt_dispersion": safe_ratio(np.sqrt(ak.sum(c.pt**2, axis=1)), sum_pt),
        "width_eta": np.sqrt(np.maximum(var_eta, 0.0)),
        "width_phi": np.sqrt(np.maximum(var_phi, 0.0)),
        "lead_dr": lead_dr,
        "mass_over_pt": safe_ratio(jets.mass, jets.pt),
    }
    assert tuple(columns) == BDT_FEATURES
    x = np.stack([ak.to_numpy(columns[name]).astype(np.float64) for name in BDT_FEATURES], axis=1)
    # Non-finite values coming from the input branches (NaN pt, ...) are left in: the scoring layer
    # replaces and counts them (features.common.finite_inputs), so the run summary can report them.
    return {"input__0": x.astype(np.float32).reshape(len(jets), len(BDT_FEATURES))}
