"""Training / evaluation jets from generated (or real PFNano) files.

Selection: the fat jets inside the model's validity domain (:class:`hepinfer.models.spec.Domain`;
the shipped taggers' pT 200 GeV-2.5 TeV, ``|eta| < 2.4``) with a truth label of 0 (QCD) or 1
(top-matched); unmatched ttbar jets (label -1) are dropped.

Weights (:func:`flat_pt_weights`): each jet's weight makes its class's pT spectrum flat over the
domain (bins of ``PT_WEIGHT_BIN_GEV``, capped at ``MAX_WEIGHT`` times the mean so that a few jets in
a sparse bin cannot dominate), with a mean of 1 per class; training uses them in the loss, so the
taggers learn no pT preference from the generated spectrum.  Files are
read with uproot (TTree or RNTuple) and constituents linked through the FatJetPFCands table, so
neither coffea nor a particular schema is needed.  Models that read the FatJet branches alone
(``bdt_nanoaod``) read no constituents: they train on standard NanoAOD files too.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from hepinfer.errors import ConfigError, InputMismatch
from hepinfer.features.common import link_constituents
from hepinfer.models import TAGGER_DOMAIN
from hepinfer.models.spec import Domain

COLLECTIONS = ("FatJet", "PFCands", "FatJetPFCands")
PT_WEIGHT_BIN_GEV = 50.0
MAX_WEIGHT = 10.0


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
    constituents: ak.Array | None  # jets x particles; None for models that read the FatJet branches alone
    labels: np.ndarray  # 1 = top, 0 = QCD
    files: list[Path]
    weights: np.ndarray | None = None  # flat pT per class (flat_pt_weights); None = all 1

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> JetSample:
        cons = None if self.constituents is None else self.constituents[index]
        weights = None if self.weights is None else self.weights[index]
        return JetSample(self.jets[index], cons, self.labels[index], self.files, weights)

    def counts(self) -> dict[str, int]:
        return {"top": int((self.labels == 1).sum()), "qcd": int((self.labels == 0).sum())}


def read_events(path: Path, constituents: bool = True) -> ak.Array:
    """FatJet (and with ``constituents`` PFCands and FatJetPFCands) of a TTree or RNTuple file."""
    import uproot

    wanted = COLLECTIONS if constituents else COLLECTIONS[:1]
    try:
        tree = uproot.open(path)["Events"]
        keys = tree.keys()
        if isinstance(tree, uproot.behaviors.RNTuple.HasFields):  # a field of records per collection
            names = [c for c in wanted if c in keys]
            arrays = tree.arrays(names)
            events = ak.zip({c: arrays[c] for c in names}, depth_limit=1)
        else:  # a TTree: nFatJet + FatJet_pt, ...
            names = [k for k in keys if k.split("_", 1)[0] in wanted and "_" in k]
            arrays = tree.arrays(names)
            groups = [c for c in wanted if any(k.startswith(c + "_") for k in names)]
            events = ak.zip(
                {c: ak.zip({k[len(c) + 1 :]: arrays[k] for k in names if k.startswith(c + "_")}) for c in groups},
                depth_limit=1,
            )
    except Exception as err:  # noqa: BLE001 - uproot raises many kinds for a bad file
        raise InputMismatch(f"{path}: cannot read an Events tree: {err}") from err
    if "FatJet" not in events.fields or "label" not in events.FatJet.fields:
        raise InputMismatch(f"{path}: branch FatJet_label (the truth label) is missing; is it a hepinfer sample?")
    missing = [c for c in wanted if c not in events.fields]
    if missing:
        raise InputMismatch(
            f"{path}: no {', '.join(missing)} collection(s): the model reads the fat jets' PF candidates "
            "(PFNano), this file has none (standard NanoAOD)"
        )
    return events


def flat_pt_weights(pt: np.ndarray, labels: np.ndarray, domain: Domain = TAGGER_DOMAIN) -> np.ndarray:
    """Per-jet weights that make each class's pT spectrum flat over ``domain`` (mean 1 per class)."""
    edges = np.arange(domain.pt[0], domain.pt[1] + PT_WEIGHT_BIN_GEV, PT_WEIGHT_BIN_GEV)
    which = np.clip(np.digitize(pt, edges) - 1, 0, len(edges) - 2)
    weights = np.ones(len(pt), dtype=np.float64)
    for cls in np.unique(labels):
        mine = labels == cls
        counts = np.bincount(which[mine], minlength=len(edges) - 1).astype(np.float64)
        w = 1.0 / counts[which[mine]]
        w /= w.mean()
        w = np.minimum(w, MAX_WEIGHT)
        weights[mine] = w / w.mean()
    return weights


def load_jets(
    patterns,
    *,
    max_jets: int | None = None,
    balance: bool = True,
    seed: int = 0,
    constituents: bool = True,
    domain: Domain | None = None,
) -> JetSample:
    """Selected, labelled jets from files: inside ``domain`` (default: the shipped taggers'), with
    flat-pT weights per class; with ``balance`` the larger class is subsampled (seeded);
    without ``constituents`` the jets only (files without PF candidates are fine then)."""
    domain = domain or TAGGER_DOMAIN
    files = expand(patterns)
    jets, cons = [], []
    for path in files:
        events = read_events(path, constituents)
        fj = events.FatJet
        sel = domain.contains(fj.pt, fj.eta) & (fj.label >= 0)
        jets.append(ak.flatten(fj[sel]))
        if constituents:
            cons.append(ak.flatten(link_constituents(events)[sel], axis=1))
    jets_all = ak.concatenate(jets)
    cons_all = ak.concatenate(cons) if constituents else None
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
    weights = flat_pt_weights(ak.to_numpy(jets_all.pt).astype(np.float64), labels, domain)
    return JetSample(jets_all, cons_all, labels, files, weights).subset(index)
