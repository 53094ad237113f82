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

from hepinfer.analysis.cms_compare import pairs_of
from hepinfer.analysis.selection import PT_STATUS, pt_axis, selection_for
from hepinfer.coffea import JetTagger, constituents_of
from hepinfer.config import InferenceConfig
from hepinfer.features.common import plain
from hepinfer.models.resolved import resolve
from hepinfer.scorer import rows_by_server
from hepinfer.session import Session, resolve_config

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

    Selection (:mod:`hepinfer.analysis.selection`): by default the fat jets inside the models' validity
    domains (the smallest pT range and ``|eta|`` cut holding every model's ``ModelSpec.domain``: pT
    200-2500 GeV, ``|eta| < 2.4`` for the shipped taggers; no cut when a model declares no domain);
    ``pt_min``, ``pt_max`` (GeV, both ends included) and ``eta_max`` (``|eta| <``) each replace one
    bound.  Each model scores the selected jets inside its own domain and counts the others
    (``outside_domain_<model>`` in the cut flow).
    Output: ``hists`` with ``score`` (model x the score of the class named by ``score``, P(top) by
    default), ``msoftdrop`` (model x tagged/untagged x soft-drop mass), ``cms_score`` (tagger x
    score: CMS's own ``CMS_TAGGERS`` where the files carry them), ``pt_selected`` (selected jets by
    pT bin) and ``pt`` (model x scored/tagged/outside_domain x pT bin; bins
    :data:`~hepinfer.analysis.selection.PT_BIN_EDGES_GEV` with underflow and overflow); ``cutflow``
    (events, events with a selected fat jet, selected jets, tagged and outside-domain jets per
    model); ``inference`` (per model, jets scored on the server and locally: the mode actually used,
    which in ``auto`` mode can differ from chunk to chunk); ``pairs`` ({model: {CMS tagger: (model
    score, CMS score) of every jet both scored}}, for :func:`hepinfer.analysis.cms_compare.rank_correlations`);
    ``jets_by_server`` ({model: {server URL: jets scored there}}, eager events only).
    A jet is tagged when its score > ``threshold``, or with ``working_point`` (``"top@1%"``) > that
    working point's threshold for each model (from the model cards:
    :meth:`hepinfer.models.resolved.Model.working_point_cut`).
    Works on eager / virtual events (processor.Runner)
    and on dask events (the hists are then dask hists, the pairs dask arrays), with NanoAODSchema or
    PFNanoAODSchema; on standard NanoAOD (no PF candidates) only models that read the FatJet branches
    alone can run.  coffea's dask mode does not open RNTuple files (coffea 2026.9.0); eager and
    virtual events do, and ``hepinfer run`` reads every file through processor.Runner's virtual chunks.
    ``pipeline`` (eager chunks, remote / auto mode): overlap one model's feature building with the
    previous model's inference, and with ``piece_jets`` also pieces of a chunk with each other (see
    the module's docstring); False scores each model's jets in one call after the other.
    ``config``: an InferenceConfig (taken as it is), a live :class:`hepinfer.Session`, or None: the
    ``HEPINFER_*`` variables of the environment, read when the processor is made (:mod:`hepinfer.config`).
    """

    def __init__(
        self,
        models=("particlenet", "bdt"),
        config: InferenceConfig | Session | None = None,
        threshold: float = 0.5,
        pt_min: float | None = None,
        pt_max: float | None = None,
        eta_max: float | None = None,
        pipeline: bool = True,
        piece_jets: int | None = None,
        score: str = "top",
        working_point: str | None = None,
    ):
        resolved = [resolve(m) for m in models]
        self.models = tuple(m.name for m in resolved)
        self.working_point = working_point
        self.cuts = {m: float(threshold) for m in self.models}
        if working_point:  # read from the model cards here, on the client; workers get the numbers
            self.cuts = {m.name: m.working_point_cut(working_point, score) for m in resolved}
        self.score = score
        self.pipeline = pipeline
        self.piece_jets = piece_jets
        # a live Session, else a frozen config: the one given, or the environment's, read here (submit side)
        self.config = config if isinstance(config, Session) else resolve_config(config)
        self.threshold = threshold
        self.taggers = {m.name: JetTagger(m, self.config, score=score) for m in resolved}
        self.domains = {m: tagger.spec.domain for m, tagger in self.taggers.items()}
        self.selection = selection_for(self.domains.values(), pt_min, pt_max, eta_max)

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
            "pt_selected": factory(pt_axis(hist)),
            "pt": factory(model_axis, hist.axis.StrCategory(list(PT_STATUS), name="status"), pt_axis(hist)),
        }

    def process(self, events):
        try:
            import dask_awkward as dak

            is_dask = isinstance(events, dak.Array)
        except ImportError:  # pragma: no cover
            is_dask = False
        fat = events.FatJet
        cons = constituents_of(events, fat)
        sel = self.selection.mask(fat)
        jets, cons = fat[sel], (cons[sel] if cons is not None else None)  # None: no PF candidates (NanoAOD)
        hists = self._hists(is_dask)
        cms_taggers = [t for t in CMS_TAGGERS if t in jets.fields]  # CMS's own scores, where the files carry them
        for tagger in cms_taggers:
            hists["cms_score"].fill(tagger=tagger, score=ak.flatten(jets[tagger]))
        hists["pt_selected"].fill(pt=ak.flatten(jets.pt))
        cutflow = {
            "events": ak.num(events.FatJet, axis=0),
            "events_with_selected_fatjet": ak.sum(ak.num(jets, axis=1) > 0),
            "selected_fatjets": ak.sum(ak.num(jets, axis=1)),
        }
        subsets = self._in_domains(jets, cons)
        for model, (_jets, _cons, outside) in subsets.items():
            cutflow[f"outside_domain_{model}"] = ak.sum(ak.num(outside, axis=1)) if outside is not None else 0
            if outside is not None:
                hists["pt"].fill(model=model, status="outside_domain", pt=ak.flatten(outside.pt))
        inference, pairs, by_server = {}, {}, {}
        tagged_all = self._tag_all({m: (j, c) for m, (j, c, _) in subsets.items()}, is_dask)
        for model, (tags, reports) in tagged_all.items():
            scored = subsets[model][0]
            tags = ak.flatten(tags)
            scores = tags["score"]
            tagged = scores > self.cuts[model]
            flat_msd, flat_pt = ak.flatten(scored.msoftdrop), ak.flatten(scored.pt)
            hists["score"].fill(model=model, score=scores)
            hists["msoftdrop"].fill(model=model, tag="tagged", msd=flat_msd[tagged])
            hists["msoftdrop"].fill(model=model, tag="untagged", msd=flat_msd[~tagged])
            hists["pt"].fill(model=model, status="scored", pt=flat_pt)
            hists["pt"].fill(model=model, status="tagged", pt=flat_pt[tagged])
            cutflow[f"tagged_{model}"] = ak.sum(tagged)
            pairs[model] = {t: pairs_of(scores, ak.flatten(scored[t]), is_dask) for t in cms_taggers}
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
                by_server[model] = rows_by_server(reports)
        return {"hists": hists, "cutflow": cutflow, "inference": inference, "pairs": pairs, "jets_by_server": by_server}

    def _in_domains(self, jets, cons) -> dict:
        """Per model: (the selected jets inside its domain, their constituents, the selected jets
        outside it or None for a model without a domain); models sharing a domain share the arrays."""
        by_domain, out = {}, {}
        for model, domain in self.domains.items():
            if domain not in by_domain:
                if domain is None:
                    by_domain[domain] = (jets, cons, None)
                else:
                    inside = domain.contains(jets.pt, jets.eta)
                    by_domain[domain] = (jets[inside], cons[inside] if cons is not None else None, jets[~inside])
            out[model] = by_domain[domain]
        return out

    def _tag_all(self, subsets: dict, is_dask: bool) -> dict:
        """Per model: the tagger's output for its jets (``subsets``: {model: (jets, constituents)};
        jagged like the jets) and the scoring calls' reports (None for dask arrays, whose calls
        happen later, inside the graph)."""
        if is_dask:
            return {model: (tagger.tag(*subsets[model]), None) for model, tagger in self.taggers.items()}
        mode = resolve_config(self.config).mode
        if not self.pipeline or mode == "local":
            out = {}
            for model, tagger in self.taggers.items():
                tags, report = tagger.tag_report(*subsets[model])
                out[model] = (tags, [report])
            return out
        futures: dict = {model: [] for model in self.taggers}
        try:
            parts = {model: self._parts(*subsets[model]) for model in self.taggers}
            for i in range(max(len(p) for p in parts.values())):  # piece-major: the first request leaves at once
                for model, tagger in self.taggers.items():
                    if i < len(parts[model]):
                        futures[model].append(tagger.submit(*parts[model][i]))
            out = {}
            for model, fs in futures.items():
                done = [f.result() for f in fs]
                out[model] = (_concatenate([tags for tags, _ in done]), [report for _, report in done])
            return out
        finally:  # on an error, do not leave requests of this chunk running behind the next one
            for fs in futures.values():
                for f in fs:
                    f.cancel()

    def _parts(self, jets, cons) -> list[tuple]:
        """(jets, constituents) in pieces of about ``piece_jets`` jets (one piece without it)."""
        if not self.piece_jets:
            return [(jets, cons)]
        return [(jets[p], cons[p] if cons is not None else None) for p in _pieces(jets, self.piece_jets)]

    def postprocess(self, accumulator):
        return accumulator
