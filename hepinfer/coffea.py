"""coffea plug-in: score jet collections inside processors, and an example top-tagging processor.

``JetTagger(model, config)`` is called on a jet collection (``events.FatJet``) and returns P(top)
per jet with the same jagged layout as the jets.  It builds the model's inputs with
hepinfer.features and scores them through a :class:`hepinfer.Scorer` in the configured mode.

* Eager and virtual arrays (``processor.Runner`` chunks) are scored directly.
* dask-awkward arrays (coffea's dask mode) get a ``map_partitions`` node.  While dask-awkward
  traces the graph on typetracers, the tagger touches the columns the builder reads and returns a
  typetracer shaped like the jets: the output type comes from the ModelSpec, and **the server is
  never contacted while the graph is built** (coffea.ml_tools calls the remote model on length-one
  arrays for that).
* Workers receive the tagger's settings (model name and InferenceConfig), never a client: the
  Scorer, and with it the Triton client, is created once per worker process and reused by every
  chunk that process scores.
"""

from __future__ import annotations

import atexit
import os
import threading

import awkward as ak
import numpy as np

from .config import InferenceConfig
from .features import build_inputs, link_constituents
from .features.common import ETA_MAX, PT_WINDOW_GEV, in_window, is_typetracer, plain
from .models import get_spec
from .scorer import Scorer
from .session import Session, resolve_config

_SCORERS: dict = {}
_LOCK = threading.Lock()


def _scorer_for(model: str, config: InferenceConfig) -> Scorer:
    """This process' Scorer for (model, config), created on first use and reused by every chunk."""
    key = (os.getpid(), model, repr(config))
    scorer = _SCORERS.get(key)
    if scorer is None:
        with _LOCK:
            scorer = _SCORERS.get(key)
            if scorer is None:
                scorer = _SCORERS[key] = Scorer(model, config=config)
    return scorer


@atexit.register
def _close_scorers() -> None:
    """Close the per-process clients before the interpreter tears grpc down."""
    for key, scorer in list(_SCORERS.items()):
        if key[0] == os.getpid():
            scorer.close()


def constituents_of(events_or_jets, jets=None):
    """The fat jets' constituents: coffea's ``FatJet.constituents.pf`` (PFNanoAODSchema), or the
    FatJetPFCands link table (NanoAODSchema or plain arrays; eager and virtual arrays only)."""
    jets = events_or_jets.FatJet if jets is None else jets
    try:
        return jets.constituents.pf  # PFNanoAODSchema
    except AttributeError:  # NanoAODSchema knows no PF-candidate association
        return link_constituents(events_or_jets)


class JetTagger:
    """P(top) for every jet of a collection, with the jets' jagged layout."""

    def __init__(self, model: str, config: InferenceConfig | Session | None = None, **settings):
        """``config``: an InferenceConfig, or a :class:`hepinfer.Session` whose current settings are
        read at every call (a toggle in the notebook panel applies to the next chunk scored here,
        and to every run submitted to Dask after it)."""
        self.spec = get_spec(model)
        self.settings = resolve_config(config).replace(**settings) if settings else (config or InferenceConfig())

    @property
    def config(self) -> InferenceConfig:
        return resolve_config(self.settings)

    def __dask_tokenize__(self):
        return ("hepinfer.JetTagger", self.spec.name, repr(self.config))

    def __repr__(self) -> str:
        return f"JetTagger({self.spec.name!r}, mode={self.config.mode!r})"

    @property
    def scorer(self) -> Scorer:
        return _scorer_for(self.spec.name, self.config)

    def __call__(self, jets, constituents):
        """P(top) per jet (float32), jagged like ``jets``."""
        return self.tag(jets, constituents)["score"]

    def tag(self, jets, constituents):
        """Per jet: ``score`` (P(top), float32) and ``remote`` (True where the score came from the
        server, False where it was computed locally), jagged like ``jets``.  The run summary counts
        ``remote`` to report the mode actually used, chunk by chunk, on every worker."""
        try:
            import dask_awkward as dak
        except ImportError:  # pragma: no cover - dask-awkward is part of the analysis extra
            dak = None
        if dak is not None and isinstance(jets, dak.Array):
            return dak.map_partitions(self._tag, jets, constituents, label=f"hepinfer-{self.spec.name}")
        return self._tag(jets, constituents)

    def _tag(self, jets, constituents):
        if is_typetracer(jets, constituents):
            build_inputs(self.spec.name, jets, constituents)  # touches exactly the columns it reads
            like = plain(jets)["pt"]
            return ak.zip({"score": ak.values_astype(ak.zeros_like(like), np.float32),
                           "remote": ak.values_astype(ak.zeros_like(like), bool)})
        inputs = build_inputs(self.spec.name, jets, constituents)
        outputs, where = self.scorer.score(inputs)
        scores = outputs[self.spec.output_names[0]][:, 1].astype(np.float32)
        flat = ak.zip({"score": scores, "remote": np.full(len(scores), where == "remote")})
        jets = plain(jets)
        return ak.unflatten(flat, ak.num(jets, axis=1)) if jets.ndim == 2 else flat


def _processor_base():
    from coffea import processor

    return processor.ProcessorABC


class TopTagProcessor(_processor_base()):
    """Example analysis: tag fat jets with each model and fill histograms.

    Selection: fat jets with pT in [550, 650] GeV and |eta| < 2 (the taggers' training window).
    Output: ``hists`` with ``score`` (model x P(top)) and ``msoftdrop`` (model x tagged/untagged x
    soft-drop mass); ``cutflow`` (events, events with a selected fat jet, selected jets, tagged jets
    per model); ``inference`` (per model, jets scored on the server and locally: the mode actually
    used, which in ``auto`` mode can differ from chunk to chunk).
    A jet is tagged when P(top) > ``threshold``.  Works on eager / virtual events (processor.Runner)
    and on dask events (the hists are then dask hists), with NanoAODSchema or PFNanoAODSchema.
    """

    def __init__(self, models=("particlenet", "bdt"), config: InferenceConfig | Session | None = None,
                 threshold: float = 0.5, pt_window=PT_WINDOW_GEV, eta_max: float = ETA_MAX):
        self.models = tuple(get_spec(m).name for m in models)
        self.config = config or InferenceConfig()  # an InferenceConfig or a live Session
        self.threshold = threshold
        self.pt_window = pt_window
        self.eta_max = eta_max
        self.taggers = {m: JetTagger(m, self.config) for m in self.models}

    def _hists(self, dask: bool):
        import hist
        import hist.dask

        factory = hist.dask.Hist if dask else hist.Hist
        model_axis = hist.axis.StrCategory(list(self.models), name="model")
        return {
            "score": factory(model_axis, hist.axis.Regular(50, 0, 1, name="score", label="P(top)")),
            "msoftdrop": factory(
                model_axis, hist.axis.StrCategory(["tagged", "untagged"], name="tag"),
                hist.axis.Regular(40, 0, 300, name="msd", label="soft-drop mass [GeV]"),
            ),
        }

    def process(self, events):
        try:
            import dask_awkward as dak

            is_dask = isinstance(events, dak.Array)
        except ImportError:  # pragma: no cover
            is_dask = False
        fat = events.FatJet
        cons = constituents_of(events, fat)
        sel = in_window(fat, self.pt_window, self.eta_max)
        jets, cons = fat[sel], cons[sel]
        hists = self._hists(is_dask)
        flat_msd = ak.flatten(jets.msoftdrop)
        cutflow = {
            "events": ak.num(events.FatJet, axis=0),
            "events_with_selected_fatjet": ak.sum(ak.num(jets, axis=1) > 0),
            "selected_fatjets": ak.sum(ak.num(jets, axis=1)),
        }
        inference = {}
        for model, tagger in self.taggers.items():
            tags = ak.flatten(tagger.tag(jets, cons))
            scores = tags["score"]
            tagged = scores > self.threshold
            hists["score"].fill(model=model, score=scores)
            hists["msoftdrop"].fill(model=model, tag="tagged", msd=flat_msd[tagged])
            hists["msoftdrop"].fill(model=model, tag="untagged", msd=flat_msd[~tagged])
            cutflow[f"tagged_{model}"] = ak.sum(tagged)
            inference[model] = {"remote_jets": ak.sum(tags["remote"]), "local_jets": ak.sum(~tags["remote"])}
        return {"hists": hists, "cutflow": cutflow, "inference": inference}

    def postprocess(self, accumulator):
        return accumulator
