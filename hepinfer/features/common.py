"""Shared helpers of the input builders: flattening jets across events, kinematics, link tables.

Builders take ``jets`` (records with pt, eta, phi, mass, ...) and ``constituents`` (records with
pt, eta, phi, mass, charge, pdgId, d0, dz), nested one level deeper than the jets.  Both may be
per event (events x jets [x particles]) or already flat (jets [x particles]); every builder returns
one row per jet in event order, so scores go back with ``ak.unflatten(scores, ak.num(jets))``.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hepinfer.errors import InputMismatch

CONSTITUENT_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz")


def plain(array) -> ak.Array:
    """The array without its behaviours.  coffea's jets are Lorentz vectors, whose ``tau2``
    property (proper time squared = mass^2) shadows NanoAOD's N-subjettiness field ``tau2``."""
    if isinstance(array, ak.Array):
        return ak.Array(array.layout)
    return ak.Array(array)


def is_typetracer(*arrays) -> bool:
    return any(isinstance(a, ak.Array) and ak.backend(a) == "typetracer" for a in arrays)


EAGER, TYPETRACER, DASK = "eager", "typetracer", "dask"


def array_kind(jets, constituents=None) -> str:
    """What a chunk of jets is, decided here once for everything below the caller that receives it:
    ``"dask"`` (dask-awkward collections: a graph node per partition), ``"typetracer"`` (dask-awkward
    tracing that graph: columns to touch, no data) or ``"eager"`` (data, eager or virtual: what the
    builders take)."""
    if type(jets).__module__.partition(".")[0] == "dask_awkward":
        return DASK
    return TYPETRACER if is_typetracer(jets, constituents) else EAGER


def flat_jets(jets, constituents):
    """(jets, constituents) with the event axis removed when present; checks they line up."""
    if constituents is None:  # constituents_of() of events without PF candidates
        raise InputMismatch(
            "no constituents: the events hold no PF candidates (standard NanoAOD) and this model reads them; "
            "models that read the FatJet branches alone (bdt_nanoaod) can score these jets"
        )
    jets = plain(jets)
    constituents = plain(constituents)
    if jets.ndim == 2:
        jets = ak.flatten(jets, axis=1)
    if constituents.ndim == 3:
        constituents = ak.flatten(constituents, axis=1)
    if jets.ndim != 1 or constituents.ndim != 2:
        raise InputMismatch(
            f"expected jets (events x jets or jets) and constituents one level deeper; got dimensions "
            f"{jets.ndim} and {constituents.ndim}"
        )
    if len(jets) != len(constituents):
        raise InputMismatch(f"{len(jets)} jets but constituents for {len(constituents)} jets")
    return jets, constituents


def require_fields(array, fields, what: str) -> None:
    missing = [f for f in fields if f not in ak.fields(array)]
    if missing:
        raise InputMismatch(f"{what} lack the fields {missing} (have {sorted(ak.fields(array))})")


def delta_phi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def energy(pt, eta, mass):
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)


def where(cond, a, b):
    """``ak.where`` for awkward arrays; for numpy arrays ``np.where`` with the same result type:
    awkward turns a Python scalar into a 0-d array (a float64 one for a float), which promotes a
    float32 array to float64, where numpy alone would keep float32."""
    if any(isinstance(x, ak.Array) for x in (cond, a, b)):
        return ak.where(cond, a, b)
    return np.where(cond, np.asarray(a), np.asarray(b))


def safe_log(x):
    """log(x) for x > 0, 0 elsewhere (padding and empty inputs never give -inf)."""
    return np.log(where(x > 0, x, 1.0))


def safe_ratio(num, den):
    """num / den, 0 where den is 0 (documented policy: no NaN or inf leaves a builder)."""
    return where(den != 0, num / where(den != 0, den, 1.0), 0.0)


def pad_to_numpy(jagged, length: int, fill: float = 0.0, dtype=np.float32) -> np.ndarray:
    """(N, var) -> (N, length): the first ``length`` entries, zero padded."""
    padded = ak.fill_none(ak.pad_none(jagged, length, axis=1, clip=True), fill)
    return ak.to_numpy(padded).astype(dtype, copy=False).reshape(len(jagged), length)


LINK_COLLECTIONS = ("FatJet", "PFCands", "FatJetPFCands")


def has_link_table(events) -> bool:
    """True when ``events`` hold the fat jets' PF candidates and the FatJetPFCands table linking them
    (PFNano); False for standard NanoAOD, which has no PF candidates."""
    fields = getattr(events, "fields", ())  # awkward and dask-awkward arrays alike
    return all(name in fields for name in LINK_COLLECTIONS)


def link_constituents(events):
    """Constituents of each fat jet from a PFNano ``FatJetPFCands`` table (real CMS PFNano too).

    ``events`` has ``FatJet``, ``PFCands`` and ``FatJetPFCands`` (jetIdx, pFCandsIdx) collections,
    as uproot/awkward records or coffea NanoEvents (eager, virtual or dask: only awkward operations,
    so dask-awkward traces it and loads only the link table, the candidates' fields used later and
    the jets' counts).  Returns events x jets x particles; jets without entries in the table get no
    constituents.  Needs no ``FatJet_nConstituents``.
    """
    for name in LINK_COLLECTIONS:
        if name not in getattr(events, "fields", ()):
            raise InputMismatch(f"events lack the {name!r} collection needed to link fat-jet constituents")
    fat, cands, link = events.FatJet, events.PFCands, events.FatJetPFCands
    if array_kind(fat) != DASK:
        return _link(fat, cands, link)
    import dask_awkward as dak  # dask-awkward collections: the same operations, partition by partition

    return dak.map_partitions(_link, fat, cands, link, label="hepinfer-link-constituents")


def _link(fat, cands, link):
    jet_idx = link.jetIdx
    jet = ak.local_index(fat, axis=1)
    if array_kind(jet_idx) == EAGER and len(jet_idx):
        if ak.any((jet_idx < 0) | (jet_idx >= ak.num(jet, axis=1))):
            raise InputMismatch("FatJetPFCands_jetIdx points outside the FatJet collection")
    order = ak.argsort(jet_idx, axis=1, stable=True)
    grouped = cands[link.pFCandsIdx[order]]  # events x links, grouped by jet
    counts = ak.sum(jet_idx[:, np.newaxis, :] == jet[:, :, np.newaxis], axis=2)  # events x jets
    return ak.unflatten(grouped, ak.flatten(counts), axis=1)


def finite_inputs(inputs: dict) -> tuple[dict, np.ndarray]:
    """hepinfer's policy for non-finite values (NaN, +-inf) in a model's inputs, from a broken
    branch or a division the builders did not guard: each is **replaced by 0** (the convention of
    weaver's ``nan_to_num`` preprocessing, and the value padding uses), the jet is scored like any
    other, and it is **counted**: the second value marks the rows (jets) that had any.  The same
    replacement runs before local and remote scoring, so both give the same numbers; the run
    summary reports ``nonfinite_jets`` per model."""
    n = len(next(iter(inputs.values()))) if inputs else 0
    touched = np.zeros(n, dtype=bool)
    out = {}
    for name, arr in inputs.items():
        finite = np.isfinite(arr)
        if not finite.all():
            touched |= ~finite.reshape(len(arr), -1).all(axis=1)
            arr = np.where(finite, arr, 0).astype(arr.dtype, copy=False)
        out[name] = arr
    return out, touched
