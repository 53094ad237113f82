"""Which FatJet variables should bdt_nanoaod read?  For each variable set, an XGBoost model (200 trees,
depth 6, flat-pT weights) is trained on the shipped taggers' training sample and evaluated twice: AUC
on the generated test sample, and the Spearman rank correlation with CMS's own
``FatJet_particleNetWithMass_TvsQCD`` over the fat jets of a real CMS NanoAOD v12 file inside the
taggers' domain.  Usage (SAMPLES as for tools/train_shipped.sh):

    python tools/study_nanoaod_variables.py SAMPLES REAL_NANOAOD_FILE
"""

import sys

import awkward as ak
import numpy as np
import uproot
import xgboost as xgb
from scipy.stats import spearmanr

from hepinfer.features import jet_variables
from hepinfer.ml.training.dataset import load_jets
from hepinfer.ml.training.roc import auc
from hepinfer.models import TAGGER_DOMAIN

CANDIDATES = ("pt", "eta", "mass", "msoftdrop", "tau21", "tau32", "tau43", "n2b1", "n3b1")
CANDIDATES += ("mass_over_pt", "msoftdrop_over_pt")
DROPS = ((), ("n3b1",), ("n2b1", "n3b1"), ("n2b1", "n3b1", "pt"), ("n3b1", "msoftdrop", "msoftdrop_over_pt"))


def main(samples: str, real: str) -> None:
    train = load_jets(f"{samples}/train/*.root", constituents=False, seed=1)
    test = load_jets(f"{samples}/test/*.root", constituents=False, balance=False)
    events = uproot.open(real)["Events"]
    keys = [k for k in events.keys() if k.startswith("FatJet_")]
    arrays = events.arrays(keys)
    jets = ak.flatten(ak.zip({k[len("FatJet_") :]: arrays[k] for k in keys}))
    cms = ak.to_numpy(jets.particleNetWithMass_TvsQCD)
    keep = ak.to_numpy(TAGGER_DOMAIN.contains(jets.pt, jets.eta)) & (cms >= 0)  # -10: not scored by CMS
    jets, cms = jets[keep], cms[keep]
    print(f"{len(cms)} real fat jets in the domain with a CMS score")
    for name in ("n2b1", "n3b1", "msoftdrop"):
        print(f"  {name} unset (negative) for {100 * float(np.mean(ak.to_numpy(jets[name]) < 0)):.0f} %")
    print(f"{'variables left out':<40} {'AUC':>7} {'Spearman':>9}")
    for drop in DROPS:
        chosen = [v for v in CANDIDATES if v not in drop]

        def x(j, chosen=chosen):
            return jet_variables(j, None, variables=chosen)["input__0"]

        params = dict(objective="binary:logistic", max_depth=6, eta=0.05, subsample=0.8, colsample_bytree=0.8)
        booster = xgb.train(
            {**params, "seed": 1}, xgb.DMatrix(x(train.jets), label=train.labels, weight=train.weights), 200
        )
        a = auc(test.labels, booster.predict(xgb.DMatrix(x(test.jets))))
        rho = spearmanr(booster.predict(xgb.DMatrix(x(jets))), cms).statistic
        print(f"{', '.join(drop) or 'none':<40} {a:7.4f} {rho:9.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
