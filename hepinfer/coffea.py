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
* Pipelining (eager chunks, remote / auto mode): ``TopTagProcessor`` builds one model's inputs in
  the task's thread and hands the request to a small per-process thread pool (``max_in_flight``
  threads), then builds the next model's inputs while the server computes; the answers are put
  back in order.  ``piece_jets=N`` also cuts a chunk into pieces of about N jets (whole events),
  overlapping the features of the next piece with inference of the current one; it is off by
  default because awkward's per-call overhead made it slower here (measured in the README:
  2 workers, 151-162 events/s with pieces of 256 jets against 172-174 without).  Local mode
  scores the whole chunk in the task's thread: more threads there would only take CPU cores the
  worker was not given.
"""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import awkward as ak
import numpy as np

from .config import InferenceConfig
from .features import build_inputs, link_constituents
from .features.common import ETA_MAX, PT_WINDOW_GEV, finite_inputs, in_window, is_typetracer, plain
from .models import get_spec
from .scorer import Scorer
from .session import Session, resolve_config

_SCORERS: dict = {}
_LOCK = threading.Lock()


def _scorer_for(model: str, config: InferenceConfig) -> Scorer:
    """This process' Scorer for (model, config), created on first use and reused by every chunk."""
    key = (os.getpid(), model, config.cache_key())
    scorer = _SCORERS.get(key)
    if scorer is None:
        with _LOCK:
            scorer = _SCORERS.get(key)
            if scorer is None:
                scorer = _SCORERS[key] = Scorer(model, config=config)
    return scorer


_POOLS: dict = {}


def _pool(size: int) -> ThreadPoolExecutor:
    """This process' pool of request threads (created on first use; keyed by pid for forks)."""
    key = (os.getpid(), size)
    pool = _POOLS.get(key)
    if pool is None:
        with _LOCK:
            pool = _POOLS.get(key)
            if pool is None:
                pool = _POOLS[key] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="hepinfer-request")
    return pool


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
        return ("hepinfer.JetTagger", self.spec.name, self.config.cache_key())

    def __repr__(self) -> str:
        return f"JetTagger({self.spec.name!r}, mode={self.config.mode!r})"

    @property
    def scorer(self) -> Scorer:
        return _scorer_for(self.spec.name, self.config)

    def __call__(self, jets, constituents):
        """P(top) per jet (float32), jagged like ``jets``."""
        return self.tag(jets, constituents)["score"]

    def tag(self, jets, constituents):
        """Per jet: ``score`` (P(top), float32), ``remote`` (True where the score came from the
        server, False where it was computed locally), ``fallback`` (True where the server was
        asked, failed every retry, and the score was computed locally) and ``nonfinite`` (True where
        the jet's inputs held NaN / inf, replaced by 0: :func:`hepinfer.features.common.finite_inputs`),
        jagged like ``jets``.  The
        run summary counts them to report the mode actually used, chunk by chunk, on every worker."""
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
                           "remote": ak.values_astype(ak.zeros_like(like), bool),
                           "fallback": ak.values_astype(ak.zeros_like(like), bool),
                           "nonfinite": ak.values_astype(ak.zeros_like(like), bool)})
        return self.tag_report(jets, constituents)[0]

    def tag_report(self, jets, constituents):
        """Eager jets only: :meth:`tag`'s output and the scoring call's
        :class:`hepinfer.scorer.CallReport` (remote attempts, fallback)."""
        return self._finish(self.scorer, build_inputs(self.spec.name, jets, constituents), _counts(jets))

    def submit(self, jets, constituents) -> Future:
        """Eager jets only: build the inputs now, in this thread, and score them in this process'
        request pool; the future's result is what :meth:`tag_report` returns."""
        scorer = self.scorer
        inputs = build_inputs(self.spec.name, jets, constituents)
        return _pool(scorer.config.max_in_flight).submit(self._finish, scorer, inputs, _counts(jets))

    def _finish(self, scorer: Scorer, inputs, counts):
        inputs, nonfinite = finite_inputs(inputs)  # NaN / inf -> 0, counted (features.common)
        outputs, report = scorer.score_report(inputs)
        scores = outputs[self.spec.output_names[0]][:, 1].astype(np.float32)
        flat = ak.zip({"score": scores, "remote": np.full(len(scores), report.where == "remote"),
                       "fallback": np.full(len(scores), report.fallback), "nonfinite": nonfinite})
        return (flat if counts is None else ak.unflatten(flat, counts)), report


def _counts(jets):
    jets = plain(jets)
    return ak.num(jets, axis=1) if jets.ndim == 2 else None


def _pieces(jets, piece_jets: int) -> list[slice]:
    """Event ranges holding about ``piece_jets`` jets each (whole events, at least one per piece)."""
    n_events = len(jets)
    if n_events == 0:
        return [slice(0, 0)]
    ends = np.cumsum(ak.to_numpy(ak.num(plain(jets), axis=1)))
    cuts = [0]
    while cuts[-1] < n_events:
        start_jets = ends[cuts[-1] - 1] if cuts[-1] else 0
        stop = int(np.searchsorted(ends, start_jets + piece_jets, side="right"))
        cuts.append(min(n_events, max(stop, cuts[-1] + 1)))
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _concatenate(parts):
    return parts[0] if len(parts) == 1 else ak.concatenate(parts)


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
    ``pipeline`` (eager chunks, remote / auto mode): overlap one model's feature building with the
    previous model's inference, and with ``piece_jets`` also pieces of a chunk with each other (see
    the module's docstring); False scores each model's jets in one call after the other.
    """

    def __init__(self, models=("particlenet", "bdt"), config: InferenceConfig | Session | None = None,
                 threshold: float = 0.5, pt_window=PT_WINDOW_GEV, eta_max: float = ETA_MAX,
                 pipeline: bool = True, piece_jets: int | None = None):
        self.models = tuple(get_spec(m).name for m in models)
        self.pipeline = pipeline
        self.piece_jets = piece_jets
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
        for model, (tags, reports) in self._tag_all(jets, cons, is_dask).items():
            tags = ak.flatten(tags)
            scores = tags["score"]
            tagged = scores > self.threshold
            hists["score"].fill(model=model, score=scores)
            hists["msoftdrop"].fill(model=model, tag="tagged", msd=flat_msd[tagged])
            hists["msoftdrop"].fill(model=model, tag="untagged", msd=flat_msd[~tagged])
            cutflow[f"tagged_{model}"] = ak.sum(tagged)
            inference[model] = {"remote_jets": ak.sum(tags["remote"]), "local_jets": ak.sum(~tags["remote"]),
                                "fallback_jets": ak.sum(tags["fallback"]), "nonfinite_jets": ak.sum(tags["nonfinite"])}
            if reports is not None:  # eager chunks: per scoring call (dask: per jet only)
                inference[model].update(
                    calls=len(reports), retried_calls=sum(r.retries > 0 for r in reports),
                    retries=sum(r.retries for r in reports), fallback_calls=sum(r.fallback for r in reports))
        return {"hists": hists, "cutflow": cutflow, "inference": inference}

    def _tag_all(self, jets, cons, is_dask: bool) -> dict:
        """Per model: the tagger's output for ``jets`` (jagged like them) and the scoring calls'
        reports (None for dask arrays, whose calls happen later, inside the graph)."""
        if is_dask:
            return {model: (tagger.tag(jets, cons), None) for model, tagger in self.taggers.items()}
        mode = resolve_config(self.config).mode
        if not self.pipeline or mode == "local":
            out = {}
            for model, tagger in self.taggers.items():
                tags, report = tagger.tag_report(jets, cons)
                out[model] = (tags, [report])
            return out
        futures: dict = {model: [] for model in self.taggers}
        try:
            parts = ([(jets[p], cons[p]) for p in _pieces(jets, self.piece_jets)] if self.piece_jets
                     else [(jets, cons)])
            for part_jets, part_cons in parts:  # piece-major: the first request leaves at once
                for model, tagger in self.taggers.items():
                    futures[model].append(tagger.submit(part_jets, part_cons))
            out = {}
            for model, fs in futures.items():
                done = [f.result() for f in fs]
                out[model] = (_concatenate([tags for tags, _ in done]), [report for _, report in done])
            return out
        finally:  # on an error, do not leave requests of this chunk running behind the next one
            for fs in futures.values():
                for f in fs:
                    f.cancel()

    def postprocess(self, accumulator):
        return accumulator
