"""The ``jet_variables`` builder: one row of jet-level variables per jet.

Each name of ``variables`` is a derived variable of :data:`JET_VARIABLES` or else any jet field
(``msoftdrop``, ``n2b1``, a CMS branch such as ``particleNet_TvsQCD``) taken as it is.  Ratios with
a zero denominator are 0 (no NaN or inf comes out of the builder's own arithmetic; non-finite values
of the input branches are left in, and the scoring layer replaces and counts them).  Variables that
summarise the constituents make the builder read them; without such variables the constituents
are ignored (they may be None).  Output: ``{input_name: (N, len(variables))}`` float32.

The BDTs are instances: ``bdt`` = ``jet_variables(variables=BDT_FEATURES)``, ``bdt_nanoaod`` =
``jet_variables(variables=NANOAOD_BDT_VARIABLES)`` (FatJet branches only).

Each variable is one expression over :class:`JetSummaries`, evaluated on flat numpy arrays
(:mod:`hepinfer.features.flat`; sums per jet with :func:`~hepinfer.features.segments.segment_sum`,
the leading constituent with :func:`~hepinfer.features.segments.segment_argmax`).  The same
expressions on awkward arrays (:func:`jet_variables_on_awkward`) are the reference the values are
tested against, bit for bit: the sums add the same numbers in the same order and dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import awkward as ak
import numpy as np

from hepinfer.errors import InputMismatch
from hepinfer.features import base
from hepinfer.features.catalogues import BDT_FEATURES, NANOAOD_BDT_FEATURES
from hepinfer.features.common import flat_jets, plain, require_fields, safe_ratio, where
from hepinfer.features.flat import Unsupported, chunk
from hepinfer.features.segments import segment_argmax, segment_sum


class Variable(NamedTuple):
    description: str
    jet_fields: tuple[str, ...]
    constituent_fields: tuple[str, ...]
    compute: Callable  # (JetSummaries) -> one value per jet


class JetSummaries(base.AroundTheAxis):
    """Intermediates shared by the variables (computed once, when first needed).  Subclasses set
    ``jets`` (the jets' fields) and ``c`` (the constituents' fields) and give ``sum(x)`` (per jet,
    of a per-particle quantity), ``at_lead(x)`` (x of the leading-pT constituent, 0 without one) and
    ``n_constituents()``."""

    @cached_property
    def sum_pt(self):
        return self.sum(self.c.pt)

    @cached_property
    def charged(self):
        return self.c.charge != 0

    def width(self, d):
        mean = safe_ratio(self.sum(self.c.pt * d), self.sum_pt)
        var = safe_ratio(self.sum(self.c.pt * d**2), self.sum_pt) - mean**2
        return np.sqrt(np.maximum(var, 0.0))


class _FlatJets(JetSummaries):
    """The summaries on a Chunk's flat arrays."""

    def __init__(self, chunk):
        self.chunk = chunk
        self.jets = chunk.jet
        self.c = chunk.particle

    def sum(self, x):
        return segment_sum(x, self.chunk.jet_index, self.chunk.n_jets)

    @cached_property
    def lead(self):
        ch = self.chunk
        return segment_argmax(self.c.pt, ch.offsets, ch.jet_index)

    def at_lead(self, x):
        out = np.zeros(self.chunk.n_jets, dtype=np.result_type(x.dtype, np.float64))  # as fill_none(.., 0.0)
        found = self.lead >= 0
        out[found] = x[self.lead[found]]
        return out

    def n_constituents(self):
        ch = self.chunk
        return ch.jet_field("nConstituents") if ch.has_jet_field("nConstituents") else ch.counts

    @property
    def deta(self):
        return self.chunk.deta

    @property
    def dphi(self):
        return self.chunk.dphi

    @property
    def charged(self):
        return self.chunk.charged


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
        "the jets' nConstituents when present, else the constituents counted", (), _PT, lambda v: v.n_constituents()
    ),
    "n_charged": Variable("number of charged constituents", (), ("charge",), lambda v: v.sum(v.charged)),
    "n_neutral": Variable("number of neutral constituents", (), ("charge",), lambda v: v.sum(~v.charged)),
    "pt_frac_leading": Variable(
        "leading constituent pT / jet pT",
        _PT,
        _PT,
        lambda v: safe_ratio(v.at_lead(v.c.pt), v.jets.pt),
    ),
    "pt_frac_charged": Variable(
        "sum of charged pT / sum of pT",
        (),
        ("pt", "charge"),
        lambda v: safe_ratio(v.sum(where(v.charged, v.c.pt, 0.0)), v.sum_pt),
    ),
    "girth": Variable("sum pT_i dR_i / jet pT", _PTANG, _PTANG, lambda v: safe_ratio(v.sum(v.c.pt * v.dr), v.jets.pt)),
    "pt_dispersion": Variable(
        "sqrt(sum pT_i^2) / sum pT_i", (), _PT, lambda v: safe_ratio(np.sqrt(v.sum(v.c.pt**2)), v.sum_pt)
    ),
    "width_eta": Variable("pT-weighted RMS of deta", ("eta",), ("pt", "eta"), lambda v: v.width(v.deta)),
    "width_phi": Variable("pT-weighted RMS of dphi", ("phi",), ("pt", "phi"), lambda v: v.width(v.dphi)),
    "lead_dr": Variable(
        "dR of the leading constituent to the jet axis",
        _ANG,
        _PTANG,
        lambda v: v.at_lead(v.dr),
    ),
}
NANOAOD_BDT_VARIABLES = NANOAOD_BDT_FEATURES
DEFAULTS = dict(variables=BDT_FEATURES, input_name="input__0")


def variable(name: str) -> Variable:
    """The catalogue's variable, or the jet field of that name."""
    return JET_VARIABLES.get(name) or Variable(f"the jet field {name}", (name,), (), lambda v: v.jets[name])


def check_params(**params) -> dict:
    p = {**DEFAULTS, **params}
    return dict(
        variables=base.names_from("variables", p["variables"], JET_VARIABLES, "jet variable", open_ended=True),
        **base.tensor_names({"input_name": p["input_name"]}),
    )


def required_fields(**params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    used = [variable(name) for name in check_params(**params)["variables"]]
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
    if cons_fields:
        flat = flat_jets(jets, constituents)
        require_fields(flat[1], cons_fields, "constituents")
    else:
        constituents = None
        flat = (plain(jets), None)
        if flat[0].ndim == 2:
            flat = (ak.flatten(flat[0], axis=1), None)
    require_fields(flat[0], jet_fields, "jets")
    names = p["variables"]
    try:
        ctx = chunk(jets, constituents, flat).view(_FlatJets)
        columns = [np.asarray(variable(name).compute(ctx)) for name in names]
    except Unsupported:  # None among the values, a field that is not numbers: the awkward path
        return jet_variables_on_awkward(*flat, **p)
    x = np.empty((len(flat[0]), len(names)), dtype=np.float64)
    for k, col in enumerate(columns):
        x[:, k] = col
    return {p["input_name"]: x.astype(np.float32)}


class AwkwardJets(JetSummaries):
    """The summaries with awkward's reducers."""

    def __init__(self, jets, constituents):
        self.jets, self.c = jets, constituents

    def sum(self, x):
        return ak.sum(x, axis=1)

    @cached_property
    def lead(self):
        return ak.argmax(self.c.pt, axis=1, keepdims=True)

    def at_lead(self, x):
        return ak.fill_none(ak.firsts(x[self.lead]), 0.0)

    def n_constituents(self):
        return self.jets.nConstituents if "nConstituents" in ak.fields(self.jets) else ak.num(self.c, axis=1)


def jet_variables_on_awkward(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The tensor from the variables' expressions on awkward arrays, for inputs the flat path does
    not take (``jets`` / ``constituents`` without the event axis; ``p``: the checked parameters)."""
    ctx = AwkwardJets(jets, constituents)
    names = p["variables"]
    columns = [ak.to_numpy(variable(name).compute(ctx)) for name in names]
    for name, col in zip(names, columns):
        if col.ndim != 1:
            raise InputMismatch(f"jet variable {name!r} is not one number per jet (shape {col.shape})")
    x = np.stack([col.astype(np.float64) for col in columns], axis=1)
    return {p["input_name"]: x.astype(np.float32).reshape(len(jets), len(names))}


jet_variables.check_params = check_params
jet_variables.required_fields = required_fields
jet_variables.touched_fields = touched_fields
jet_variables.output_shapes = output_shapes
