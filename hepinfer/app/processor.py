"""The example analysis: :class:`TopTagProcessor`, a coffea processor that tags fat jets with each
model through :class:`hepinfer.coffea.JetTagger` and fills histograms.

Pipelining (eager chunks, remote / auto mode): the processor builds one model's inputs in the task's
thread and hands the request to the tagger's per-process request pool (``max_in_flight`` threads),
then builds the next model's inputs while the server computes; the answers are put back in order.
``piece_jets=N`` also cuts a chunk into pieces of about N jets (whole events), overlapping the
features of the next piece with inference of the current one; it is off by default because
awkward's per-call overhead made it slower (docs: performance page).  Local mode scores the whole
chunk in the task's thread: more threads there would only take CPU cores the worker was not given.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..coffea import JetTagger, constituents_of
from ..config import InferenceConfig
from ..features.common import ETA_MAX, PT_WINDOW_GEV, in_window, plain
from ..models import get_spec
from ..session import Session, resolve_config

__all__ = ["CMS_TAGGERS", "TopTagProcessor"]

# CMS's own top-tagger scores in NanoAOD (whichever a file carries), histogrammed beside hepinfer's
CMS_TAGGERS = ("particleNet_TvsQCD", "particleNetWithMass_TvsQCD", "deepTag_TvsQCD")


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

    Selection: fat jets with pT in [550, 650] GeV and ``|eta| < 2`` (the taggers' training window).
    Output: ``hists`` with ``score`` (model x the score of the class named by ``score``, P(top) by
    default), ``msoftdrop`` (model x tagged/untagged x soft-drop mass) and ``cms_score`` (tagger x
    score: CMS's own ``CMS_TAGGERS`` where the files carry them); ``cutflow`` (events,
    events with a selected fat jet, selected jets, tagged jets per model); ``inference`` (per model,
    jets scored on the server and locally: the mode actually used, which in ``auto`` mode can differ
    from chunk to chunk).
    A jet is tagged when its score > ``threshold``, or with ``working_point`` (``"top@1%"``) > that
    working point's threshold for each model (:func:`working_point_cut`, from the model cards).
    Works on eager / virtual events (processor.Runner)
    and on dask events (the hists are then dask hists), with NanoAODSchema or PFNanoAODSchema; on
    standard NanoAOD (no PF candidates) only models that read the FatJet branches alone can run.
    ``pipeline`` (eager chunks, remote / auto mode): overlap one model's feature building with the
    previous model's inference, and with ``piece_jets`` also pieces of a chunk with each other (see
    the module's docstring); False scores each model's jets in one call after the other.
    """

    def __init__(
        self,
        models=("particlenet", "bdt"),
        config: InferenceConfig | Session | None = None,
        threshold: float = 0.5,
        pt_window=PT_WINDOW_GEV,
        eta_max: float = ETA_MAX,
        pipeline: bool = True,
        piece_jets: int | None = None,
        score: str = "top",
        working_point: str | None = None,
    ):
        self.models = tuple(get_spec(m).name for m in models)
        self.working_point = working_point
        self.cuts = {m: float(threshold) for m in self.models}
        if working_point:  # read from the model cards here, on the client; workers get the numbers
            from .training.working_points import working_point_cut

            self.cuts = {m: working_point_cut(m, working_point, score) for m in self.models}
        self.score = score
        self.pipeline = pipeline
        self.piece_jets = piece_jets
        self.config = config or InferenceConfig()  # an InferenceConfig or a live Session
        self.threshold = threshold
        self.pt_window = pt_window
        self.eta_max = eta_max
        self.taggers = {m: JetTagger(m, self.config, score=score) for m in self.models}

    def _hists(self, dask: bool):
        import hist
        import hist.dask

        factory = hist.dask.Hist if dask else hist.Hist
        model_axis = hist.axis.StrCategory(list(self.models), name="model")
        return {
            "cms_score": factory(
                hist.axis.StrCategory(list(CMS_TAGGERS), name="tagger"),
                hist.axis.Regular(50, 0, 1, name="score", label="CMS tagger score (top vs QCD)"),
            ),
            "score": factory(model_axis, hist.axis.Regular(50, 0, 1, name="score", label=f"P({self.score})")),
            "msoftdrop": factory(
                model_axis,
                hist.axis.StrCategory(["tagged", "untagged"], name="tag"),
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
        jets, cons = fat[sel], (cons[sel] if cons is not None else None)  # None: no PF candidates (NanoAOD)
        hists = self._hists(is_dask)
        for tagger in CMS_TAGGERS:  # CMS's own scores, where the files carry them
            if tagger in jets.fields:
                hists["cms_score"].fill(tagger=tagger, score=ak.flatten(jets[tagger]))
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
            tagged = scores > self.cuts[model]
            hists["score"].fill(model=model, score=scores)
            hists["msoftdrop"].fill(model=model, tag="tagged", msd=flat_msd[tagged])
            hists["msoftdrop"].fill(model=model, tag="untagged", msd=flat_msd[~tagged])
            cutflow[f"tagged_{model}"] = ak.sum(tagged)
            inference[model] = {
                "remote_jets": ak.sum(tags["remote"]),
                "local_jets": ak.sum(~tags["remote"]),
                "fallback_jets": ak.sum(tags["fallback"]),
                "nonfinite_jets": ak.sum(tags["nonfinite"]),
            }
            if reports is not None:  # eager chunks: per scoring call (dask: per jet only)
                inference[model].update(
                    calls=len(reports),
                    retried_calls=sum(r.retries > 0 for r in reports),
                    retries=sum(r.retries for r in reports),
                    fallback_calls=sum(r.fallback for r in reports),
                )
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
            parts = [(jets[p], cons[p]) for p in _pieces(jets, self.piece_jets)] if self.piece_jets else [(jets, cons)]
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
