"""Training / evaluation jets from generated (or real PFNano) files.

Selection (the top-tagging landscape convention): fat-jet pT in [550, 650] GeV, ``|eta| < 2``, and a
truth label of 0 (QCD) or 1 (top-matched); unmatched ttbar jets (label -1) are dropped.  Files are
read with uproot and constituents linked through the FatJetPFCands table, so neither coffea nor
a particular schema is needed.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from ...errors import ConfigError, InputMismatch
from ...features.common import in_window, link_constituents

BRANCH_PREFIXES = ("FatJet_", "PFCands_", "FatJetPFCands_")


def expand(patterns) -> list[Path]:
    files: list[Path] = []
    for pattern in [patterns] if isinstance(patterns, (str, Path)) else patterns:
        hits = sorted(glob.glob(str(pattern)))
        if not hits:
            raise ConfigError(f"no file matches {str(pattern)!r}")
        files += [Path(h) for h in hits]
    return files


@dataclass
class JetSample:
    jets: ak.Array  # flat: one record per selected jet
    constituents: ak.Array  # jets x particles
    labels: np.ndarray  # 1 = top, 0 = QCD
    files: list[Path]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> JetSample:
        return JetSample(self.jets[index], self.constituents[index], self.labels[index], self.files)

    def counts(self) -> dict[str, int]:
        return {"top": int((self.labels == 1).sum()), "qcd": int((self.labels == 0).sum())}


def read_events(path: Path) -> ak.Array:
    import uproot

    try:
        tree = uproot.open(path)["Events"]
    except Exception as err:  # noqa: BLE001 - uproot raises many kinds for a bad file
        raise InputMismatch(f"{path}: cannot read an Events tree: {err}") from err
    names = [k for k in tree.keys() if k.startswith(BRANCH_PREFIXES)]
    if "FatJet_label" not in names:
        raise InputMismatch(f"{path}: branch FatJet_label (the truth label) is missing; is it a hepinfer sample?")
    arrays = tree.arrays(names)
    return ak.zip(
        {
            c: ak.zip({k[len(c) + 1 :]: arrays[k] for k in names if k.startswith(c + "_")})
            for c in ("FatJet", "PFCands", "FatJetPFCands")
        },
        depth_limit=1,
    )


def load_jets(patterns, *, max_jets: int | None = None, balance: bool = True, seed: int = 0) -> JetSample:
    """Selected, labelled jets from files; with ``balance`` the larger class is subsampled (seeded)."""
    files = expand(patterns)
    jets, cons = [], []
    for path in files:
        events = read_events(path)
        fj = events.FatJet
        c = link_constituents(events)
        sel = in_window(fj) & (fj.label >= 0)
        jets.append(ak.flatten(fj[sel]))
        cons.append(ak.flatten(c[sel], axis=1))
    jets_all = ak.concatenate(jets)
    cons_all = ak.concatenate(cons)
    labels = ak.to_numpy(jets_all.label).astype(np.int64)
    rng = np.random.default_rng(seed)
    index = np.arange(len(labels))
    if balance:
        top, qcd = index[labels == 1], index[labels == 0]
        n = min(len(top), len(qcd))
        index = (
            np.concatenate([rng.choice(top, n, replace=False), rng.choice(qcd, n, replace=False)]) if n else index[:0]
        )
    rng.shuffle(index)  # training order; with max_jets also a random subset
    if max_jets is not None:
        index = index[:max_jets]
    if not balance:
        index = np.sort(index)  # evaluation keeps the files' order
    return JetSample(jets_all, cons_all, labels, files).subset(index)
