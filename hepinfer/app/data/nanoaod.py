"""The NanoAOD / PFNano layout of generated files: the branches of each collection and their types,
and the writer of an ``Events`` TTree in that layout."""

from __future__ import annotations

import numpy as np


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


def write_events(path, branches: dict) -> None:
    """Write an ``Events`` TTree as NanoAOD does: jagged records ({"FatJet": ak.zip(...)}) become
    nFatJet + FatJet_pt, ... branches (uproot >= 5.7 would write an RNTuple for plain assignment)."""
    import awkward as ak
    import uproot

    with uproot.recreate(path, compression=uproot.ZLIB(4)) as f:
        tree = f.mktree(
            "Events", {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
        )
        tree.extend(branches)
