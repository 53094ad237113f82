"""Variables of ``bdt_nanoaod``, the BDT for standard NanoAOD: FatJet branches only, no PF candidates
(the ``jet_variables`` builder with ``NANOAOD_BDT_VARIABLES``).

    pt, eta, mass, msoftdrop                       FatJet branches
    tau21, tau32, tau43                            N-subjettiness ratios
    mass_over_pt, msoftdrop_over_pt                mass / pT, soft-drop mass / pT

Every variable comes from branches that NanoAOD has written for its fat jets since v9, so the model
scores standard NanoAOD, PFNano (with or without ``FatJet_nConstituents``) and RNTuple files alike.
``FatJet_nConstituents`` is left out on purpose: older NanoAOD lack it, and the count depends most
of all on what a "particle" is (the generator's visible particles, CMS's PUPPI candidates).
The energy-correlation ratios ``n2b1`` and ``n3b1`` are left out too: CMS NanoAOD v12 leaves them
unset (negative) for many fat jets, values no generated jet has (the training guide has the study on
a real CMS file).
Ratios with a zero denominator are 0 (no NaN or inf leaves the builder).  The constituents argument
is accepted for the common builder signature and ignored (it may be None).
"""

from __future__ import annotations

import numpy as np

from hepinfer.features.base import instance
from hepinfer.features.per_jet import NANOAOD_BDT_VARIABLES, jet_variables

MODEL = "bdt_nanoaod"
PARAMS = dict(variables=NANOAOD_BDT_VARIABLES)


def nanoaod_bdt_inputs(jets, constituents=None) -> dict[str, np.ndarray]:
    """``{"input__0": (N, 9)}`` float32, one row per jet in event order."""
    return jet_variables(jets, None, **PARAMS)


instance(nanoaod_bdt_inputs, jet_variables, **PARAMS)
JET_FIELDS, CONSTITUENT_FIELDS = nanoaod_bdt_inputs.required_fields()
