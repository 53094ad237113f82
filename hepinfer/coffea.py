"""coffea plug-in: score jet collections inside processors.

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
* :meth:`JetTagger.submit` builds the inputs in the caller's thread and hands the request to a
  small per-process thread pool (``max_in_flight`` threads), so a processor can build the next
  model's inputs while the server computes (the example processor,
  :class:`hepinfer.app.processor.TopTagProcessor`, does).
"""

from __future__ import annotations

import atexit
from concurrent.futures import Future, ThreadPoolExecutor

import awkward as ak
import numpy as np

from .caching import ProcessCache
from .config import InferenceConfig
from .features import build_inputs, link_constituents
from .features.common import finite_inputs, is_typetracer, plain
from .models import get_spec
from .scorer import Scorer
from .session import Session, resolve_config

_SCORERS: ProcessCache[Scorer] = ProcessCache()
_POOLS: ProcessCache[ThreadPoolExecutor] = ProcessCache()


def _scorer_for(model: str, config: InferenceConfig) -> Scorer:
    """This process' Scorer for (model, config), created on first use and reused by every chunk."""
    return _SCORERS.get((model, config.cache_key()), lambda: Scorer(model, config=config))


def _pool(size: int) -> ThreadPoolExecutor:
    """This process' pool of request threads (created on first use)."""
    return _POOLS.get(size, lambda: ThreadPoolExecutor(max_workers=size, thread_name_prefix="hepinfer-request"))


@atexit.register
def _close_scorers() -> None:
    """Close the per-process clients before the interpreter tears grpc down."""
    for scorer in _SCORERS.clear():
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
            return ak.zip(
                {
                    "score": ak.values_astype(ak.zeros_like(like), np.float32),
                    "remote": ak.values_astype(ak.zeros_like(like), bool),
                    "fallback": ak.values_astype(ak.zeros_like(like), bool),
                    "nonfinite": ak.values_astype(ak.zeros_like(like), bool),
                }
            )
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
        flat = ak.zip(
            {
                "score": scores,
                "remote": np.full(len(scores), report.where == "remote"),
                "fallback": np.full(len(scores), report.fallback),
                "nonfinite": nonfinite,
            }
        )
        return (flat if counts is None else ak.unflatten(flat, counts)), report


def _counts(jets):
    jets = plain(jets)
    return ak.num(jets, axis=1) if jets.ndim == 2 else None
