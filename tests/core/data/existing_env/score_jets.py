"""An analyst's coffea processor, run in their own environment: hepinfer's JetTagger scores a file's fat
jets with ``bdt_nanoaod`` locally and on a Triton server; prints one JSON line (jets, whether the two
agree exactly, the releases this environment holds).

    python score_jets.py NANOAOD.root grpc://host:port
"""

import json
import sys
import warnings
from importlib.metadata import version

import awkward as ak
import numpy as np
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from hepinfer import InferenceConfig
from hepinfer.coffea import JetTagger, constituents_of

MODEL = "bdt_nanoaod"


class Scores(processor.ProcessorABC):
    def __init__(self, url: str):
        self.local = JetTagger(MODEL, InferenceConfig(mode="local"))
        self.remote = JetTagger(MODEL, InferenceConfig(mode="remote", url=url, retries=0))

    def process(self, events):
        jets, constituents = events.FatJet, constituents_of(events)
        local, remote = self.local.tag(jets, constituents), self.remote.tag(jets, constituents)
        assert not ak.any(local.remote) and ak.all(remote.remote)  # each came from where it was asked
        return {"local": [ak.to_numpy(ak.flatten(local.score))], "remote": [ak.to_numpy(ak.flatten(remote.score))]}

    def postprocess(self, accumulator):
        return accumulator


def main(path: str, url: str) -> None:
    warnings.filterwarnings("ignore", module="coffea")  # the schema's notes on cross-references the file lacks
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=100)
    out = runner({"file": [path]}, treename="Events", processor_instance=Scores(url))
    local, remote = np.concatenate(out["local"]), np.concatenate(out["remote"])
    releases = {name: version(name) for name in ("coffea", "awkward", "numpy", "onnxruntime", "tritonclient")}
    releases["xgboost"] = __import__("xgboost").__version__  # whichever wheel installed the module
    print(json.dumps({"jets": len(local), "identical": bool(np.array_equal(local, remote)), "releases": releases}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
