"""The NanoAOD / PFNano layouts of generated files: the branches of each collection and their types,
the layouts (which collections and branches a file keeps) and the writer of the ``Events`` tree,
as a TTree or an RNTuple.

Layouts (``LAYOUTS``):

* ``pfnano``: everything the generator makes: FatJet (with nConstituents), Jet, PFCands,
  FatJetPFCands (the link table), GenPart, as PFNano's AK8 configuration writes them.
* ``pfnano-nocount``: PFNano without ``FatJet_nConstituents``, as older PFNano releases wrote it
  (the link table and PFCands are there; coffea's ``FatJet.constituents`` needs the count, so
  hepinfer links the candidates through the table instead).
* ``nanoaod``: standard NanoAOD: no PF candidates (no PFCands, no FatJetPFCands).  FatJet keeps
  the branches real NanoAOD v12 / v15 has and the generator computes the same way: pt, eta, phi,
  mass, msoftdrop, tau1-4, n2b1, n3b1 and nConstituents (NanoAOD's ``numberOfDaughters()``); plus
  hepinfer's truth ``label``.  NanoAOD's other FatJet branches (subjet indices, jet ID, area, CMS's
  tagger scores, ...) are not written: the generator has no detector, pile-up or CMS taggers to
  compute them from.

Formats (``FORMATS``): ``ttree`` (NanoAOD's TTree: ``nFatJet`` + ``FatJet_pt``, ...) and
``rntuple``, laid out as CMS's RNTuple NanoAOD output module writes it: each collection one field
(a vector of records: ``FatJet`` with subfields ``pt``, ``eta``, ...; no ``nFatJet`` counter),
event-level values as top-level fields.
"""

from __future__ import annotations

import numpy as np

from hepinfer.errors import ConfigError


class Columns:
    """Per-event arrays of one collection, joined into jagged arrays at the end."""

    def __init__(self, fields):
        self.fields = fields
        self.parts = {f: [] for f in fields}
        self.counts = []

    def add(self, n: int, **values) -> None:
        self.counts.append(n)
        for f in self.fields:
            self.parts[f].append(np.asarray(values[f]).reshape(n))

    def to_awkward(self, dtypes):
        import awkward as ak

        counts = np.asarray(self.counts, dtype=np.int64)
        return ak.zip(
            {
                f: ak.unflatten(
                    np.concatenate(self.parts[f]).astype(dtypes[f]) if self.parts[f] else np.zeros(0, dtypes[f]), counts
                )
                for f in self.fields
            },
            depth_limit=2,
        )


F4, I4, I2, U1 = np.float32, np.int32, np.int16, np.uint8
PF_FIELDS = {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4, "pdgId": I4, "d0": F4, "dz": F4}
FATJET_FIELDS = {
    "pt": F4,
    "eta": F4,
    "phi": F4,
    "mass": F4,
    "msoftdrop": F4,
    "tau1": F4,
    "tau2": F4,
    "tau3": F4,
    "tau4": F4,
    "n2b1": F4,
    "n3b1": F4,
    "nConstituents": U1,
    "label": I4,
}
JET_FIELDS = {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "nConstituents": U1}
LINK_FIELDS = {"jetIdx": I4, "pFCandsIdx": I4}
GEN_FIELDS = {
    "pt": F4,
    "eta": F4,
    "phi": F4,
    "mass": F4,
    "pdgId": I4,
    "status": I4,
    "genPartIdxMother": I4,
    "statusFlags": I4,
}


# collections each layout leaves out, and FatJet branches it leaves out
LAYOUTS = {
    "pfnano": {"collections": (), "fatjet": ()},
    "pfnano-nocount": {"collections": (), "fatjet": ("nConstituents",)},
    "nanoaod": {"collections": ("PFCands", "FatJetPFCands"), "fatjet": ()},
}
FORMATS = ("ttree", "rntuple")


def in_layout(branches: dict, layout: str) -> dict:
    """``branches`` ({"run": ..., "FatJet": ak.zip(...), ...}) as ``layout`` keeps them."""
    import awkward as ak

    drop = LAYOUTS[layout]
    out = {k: v for k, v in branches.items() if k not in drop["collections"]}
    if drop["fatjet"] and "FatJet" in out:
        fat = out["FatJet"]
        out["FatJet"] = ak.zip({f: fat[f] for f in ak.fields(fat) if f not in drop["fatjet"]}, depth_limit=2)
    return out


def write_events(path, branches: dict, format: str = "ttree") -> None:
    """Write the ``Events`` tree.  ``ttree`` as NanoAOD does: jagged records ({"FatJet": ak.zip(...)})
    become nFatJet + FatJet_pt, ... branches.  ``rntuple`` as CMS's RNTuple NanoAOD output does: each
    collection a field of records (uproot >= 5.7 writes an RNTuple when a dict is assigned)."""
    import awkward as ak
    import uproot

    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    with uproot.recreate(path, compression=uproot.ZLIB(4)) as f:
        if format == "rntuple":
            f["Events"] = branches
            return
        tree = f.mktree(
            "Events", {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
        )
        tree.extend(branches)
