"""BDT jet variables (``BDT_FEATURES``, 20): the ``jet_variables`` builder with the BDT's variables,
standard NanoAOD FatJet branches plus constituent summaries.  Ratios with a zero denominator are 0
(no NaN or inf leaves the builder).

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

import numpy as np

from hepinfer.features.base import instance
from hepinfer.features.catalogues import BDT_FEATURES
from hepinfer.features.per_jet import jet_variables

PARAMS = dict(variables=BDT_FEATURES)


def bdt_inputs(jets, constituents) -> dict[str, np.ndarray]:
    """``{"input__0": (N, 20)}`` float32."""
    return jet_variables(jets, constituents, **PARAMS)


instance(bdt_inputs, jet_variables, **PARAMS)
JET_FIELDS, CONSTITUENT_FIELDS = bdt_inputs.required_fields()
