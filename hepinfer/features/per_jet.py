"""The ``jet_variables`` builder: one row of jet-level variables per jet.

Each name of ``variables`` is a derived variable of :data:`JET_VARIABLES` or else any jet field
(``msoftdrop``, ``n2b1``, a CMS branch such as ``particleNet_TvsQCD``) taken as it is.  Ratios with
a zero denominator are 0 (no NaN or inf comes out of the builder's own arithmetic; non-finite values
of the input branches are left in, and the scoring layer replaces and counts them).  Variables that
summarise the constituents make the builder read them; without such variables the constituents
are ignored (they may be None).  Output: ``{input_name: (N, len(variables))}`` float32.

The BDTs are instances: ``bdt`` = ``jet_variables(variables=BDT_FEATURES)``, ``bdt_nanoaod`` =
``jet_variables(variables=NANOAOD_BDT_VARIABLES)`` (FatJet branches only).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import awkward as ak
import numpy as np

from ..errors import InputMismatch
from ..models import BDT_FEATURES, NANOAOD_BDT_FEATURES
from . import base
from .common import flat_jets, is_typetracer, plain, require_fields, safe_ratio


class Variable(NamedTuple):
    description: str
    jet_fields: tuple[str, ...]
    constituent_fields: tuple[str, ...]
    compute: Callable  # (_Jets) -> one value per jet


class _Jets(base.AroundTheAxis):
    """Intermediates shared by the variables of one call (computed once, when first needed)."""

    def __init__(self, jets, constituents):
        self.jets, self.c = jets, constituents

    @cached_property
    def sum_pt(self):
        return ak.sum(self.c.pt, axis=1)

    @cached_property
    def charged(self):
        return self.c.charge != 0

    @cached_property
    def lead(self):
        return ak.argmax(self.c.pt, axis=1, keepdims=True)

    def width(self, d):
        mean = safe_ratio(ak.sum(self.c.pt * d, axis=1), self.sum_pt)
        var = safe_ratio(ak.sum(self.c.pt * d**2, axis=1), self.sum_pt) - mean**2
        return np.sqrt(np.maximum(var, 0.0))

    def n_constituents(self):
        return self.jets.nConstituents if "nConstituents" in ak.fields(self.jets) else ak.num(self.c, axis=1)


_PT = ("pt",)
_ANG = ("eta", "phi")
_PTANG = ("pt", "eta", "phi")
JET_VARIABLES: dict[str, Variable] = {
    "tau21": Variable("tau2 / tau1", ("tau1", "tau2"), (), lambda v: safe_ratio(v.jets.tau2, v.jets.tau1)),
    "tau32": Variable("tau3 / tau2", ("tau2", "tau3"), (), lambda v: safe_ratio(v.jets.tau3, v.jets.tau2)),
    "tau43": Variable("tau4 / tau3", ("tau3", "tau4"), (), lambda v: safe_ratio(v.jets.tau4, v.jets.tau3)),
    "mass_over_pt": Variable("mass / pT", ("mass", "pt"), (), lambda v: safe_ratio(v.jets.mass, v.jets.pt)),
    "msoftdrop_over_pt": Variable(
        "soft-drop mass / pT", ("msoftdrop", "pt"), (), lambda v: safe_ratio(v.jets.msoftdrop, v.jets.pt)
    ),
    "n_constituents": Variable(
        "the jets' nConstituents when present, else the constituents counted", (), _PT, _Jets.n_constituents
    ),
    "n_charged": Variable("number of charged constituents", (), ("charge",), lambda v: ak.sum(v.charged, axis=1)),
    "n_neutral": Variable("number of neutral constituents", (), ("charge",), lambda v: ak.sum(~v.charged, axis=1)),
    "pt_frac_leading": Variable(
        "leading constituent pT / jet pT",
        _PT,
        _PT,
        lambda v: safe_ratio(ak.fill_none(ak.firsts(v.c.pt[v.lead]), 0.0), v.jets.pt),
    ),
    "pt_frac_charged": Variable(
        "sum of charged pT / sum of pT",
        (),
        ("pt", "charge"),
        lambda v: safe_ratio(ak.sum(ak.where(v.charged, v.c.pt, 0.0), axis=1), v.sum_pt),
    ),
    "girth": Variable(
        "sum pT_i dR_i / jet pT", _PTANG, _PTANG, lambda v: safe_ratio(ak.sum(v.c.pt * v.dr, axis=1), v.jets.pt)
    ),
    "pt_dispersion": Variable(
        "sqrt(sum pT_i^2) / sum pT_i", (), _PT, lambda v: safe_ratio(np.sqrt(ak.sum(v.c.pt**2, axis=1)), v.sum_pt)
    ),
    "width_eta": Variable("pT-weighted RMS of deta", ("eta",), ("pt", "eta"), lambda v: v.width(v.deta)),
    "width_phi": Variable("pT-weighted RMS of dphi", ("phi",), ("pt", "phi"), lambda v: v.width(v.dphi)),
    "lead_dr": Variable(
        "dR of the leading constituent to the jet axis",
        _ANG,
        _PTANG,
        lambda v: ak.fill_none(ak.firsts(v.dr[v.lead]), 0.0),
    ),
}
NANOAOD_BDT_VARIABLES = NANOAOD_BDT_FEATURES
DEFAULTS = dict(variables=BDT_FEATURES, input_name="input__0")


def _variable(name: str) -> Variable:
    """The catalogue's variable, or the jet field of that name."""
    return JET_VARIABLES.get(name) or Variable(f"the jet field {name}", (name,), (), lambda v: v.jets[name])


def check_params(**params) -> dict:
    p = {**DEFAULTS, **params}
    return dict(
        variables=base.names_from("variables", p["variables"], JET_VARIABLES, "jet variable", open_ended=True),
        **base.tensor_names({"input_name": p["input_name"]}),
    )


def required_fields(**params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    used = [_variable(name) for name in check_params(**params)["variables"]]
    return base.union(*(v.jet_fields for v in used)), base.union(*(v.constituent_fields for v in used))


def touched_fields(**params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The required fields, and nConstituents when n_constituents is asked for (read when present)."""
    jet, cons = required_fields(**params)
    if "n_constituents" in check_params(**params)["variables"]:
        jet = base.union(jet, ("nConstituents",))
    return jet, cons


def output_shapes(**params) -> dict[str, tuple[int, ...]]:
    p = check_params(**params)
    return {p["input_name"]: (len(p["variables"]),)}


def jet_variables(jets, constituents=None, variables=BDT_FEATURES, input_name: str = "input__0") -> dict:
    """``{input_name: (N, len(variables))}`` float32, one row per jet in event order."""
    p = check_params(variables=variables, input_name=input_name)
    jet_fields, cons_fields = required_fields(**p)
    if is_typetracer(jets, constituents):
        base.touch(jets, touched_fields(**p)[0], constituents, cons_fields)
        return base.placeholder(output_shapes(**p))
    if cons_fields:
        jets, constituents = flat_jets(jets, constituents)
        require_fields(constituents, cons_fields, "constituents")
    else:
        jets = plain(jets)
        if jets.ndim == 2:
            jets = ak.flatten(jets, axis=1)
    require_fields(jets, jet_fields, "jets")
    ctx = _Jets(jets, constituents)
    names = p["variables"]
    columns = [ak.to_numpy(_variable(name).compute(ctx)) for name in names]
    for name, col in zip(names, columns):
        if col.ndim != 1:
            raise InputMismatch(f"jet variable {name!r} is not one number per jet (shape {col.shape})")
    x = np.stack([col.astype(np.float64) for col in columns], axis=1)
    return {p["input_name"]: x.astype(np.float32).reshape(len(jets), len(names))}


jet_variables.check_params = check_params
jet_variables.required_fields = required_fields
jet_variables.touched_fields = touched_fields
jet_variables.output_shapes = output_shapes
