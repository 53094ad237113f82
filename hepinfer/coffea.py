"""coffea plug-in: score jet collections inside processors.

``JetTagger(model, config, score="top")`` is called on a jet collection (``events.FatJet``) and
returns the named class's score (P(top) by default) per jet with the same jagged layout as the jets;
``score="all"`` (or :meth:`JetTagger.scores`) returns every class from the same single scoring call,
as a record with one field per class.
It builds the model's inputs with the model's builder (hepinfer.features, or the user's) and scores
them through a :class:`hepinfer.Scorer` in the configured mode.

* Eager and virtual arrays (``processor.Runner`` chunks) are scored directly.
* dask-awkward arrays (coffea's dask mode) get a ``map_partitions`` node.  While dask-awkward
  traces the graph on typetracers, the tagger touches the columns the builder reads and returns a
  typetracer shaped like the jets: the output type comes from the ModelSpec, and **the server is
  never contacted while the graph is built** (coffea.ml_tools calls the remote model on length-one
  arrays for that).  A model that only a server has is declared for that with the TOML file
  ``hepinfer models pull`` writes (in ``HEPINFER_MODELS``).
* Workers receive the tagger's settings (model name and InferenceConfig), never a client: the
  Scorer, and with it the Triton client, is created once per worker process and reused by every
  chunk that process scores.
* :meth:`JetTagger.submit` builds the inputs in the caller's thread and hands the request to a
  small per-process thread pool (``max_in_flight`` threads; :mod:`hepinfer.process_scorers`), so a
  processor can build the next model's inputs while the server computes (the example processor,
  :class:`hepinfer.analysis.processor.TopTagProcessor`, does).

``triton_wrapper`` is coffea.ml_tools' wrapper on the Scorer (:mod:`hepinfer.ml_tools`): code written
for ``coffea.ml_tools.triton_wrapper`` switches with its import.
"""

from __future__ import annotations

import copy
from concurrent.futures import Future

import numpy as np

try:
    import awkward as ak
except ImportError as err:  # the base install is the Scorer alone
    raise ModuleNotFoundError(
        f"hepinfer.coffea needs {err.name}: pip install 'hepinfer[coffea]' (keeps the coffea already installed)",
        name=err.name,
    ) from err

from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError
from hepinfer.features.common import DASK, TYPETRACER, array_kind, finite_inputs, link_constituents, plain
from hepinfer.models.resolved import Model
from hepinfer.models.spec import ModelSpec
from hepinfer.process_scorers import request_pool, scorer_for
from hepinfer.scorer import Scorer, resolve_spec
from hepinfer.session import Session, resolve_config

ALL = "all"  # JetTagger(score=ALL): every class of the model


def constituents_of(events_or_jets, jets=None):
    """The fat jets' constituents (events x jets x particles), eager, virtual or dask:

    * coffea's ``FatJet.constituents.pf`` where PFNanoAODSchema linked them (it needs
      ``FatJet_nConstituents``);
    * else the FatJetPFCands link table (:func:`hepinfer.features.link_constituents`): NanoAODSchema,
      PFNano without ``FatJet_nConstituents`` (older releases), RNTuple files, plain arrays;
    * ``None`` when the events hold no PF candidates (standard NanoAOD): only models that read the
      FatJet branches alone (``bdt_nanoaod``) can score such jets.
    """
    from hepinfer.features.common import has_link_table

    jets = events_or_jets.FatJet if jets is None else jets
    if "pFCandsIdxG" in getattr(jets, "fields", ()):  # the schema linked them through nConstituents
        try:
            return jets.constituents.pf  # PFNanoAODSchema
        except AttributeError:  # NanoAODSchema: link records without the candidates
            pass
    if has_link_table(events_or_jets):
        return link_constituents(events_or_jets)
    return None


def class_column(spec: ModelSpec, score: str | None) -> int:
    """The column of the first output that holds class ``score`` (None: "top" when the model has it,
    else its last class); ConfigError naming the classes."""
    if not spec.classes:
        raise ConfigError(f"model {spec.name!r} declares no classes, so no score can be chosen by name")
    if score is None:
        score = "top" if "top" in spec.classes else spec.classes[-1]
    if score not in spec.classes:
        raise ConfigError(f"model {spec.name!r} has no class {score!r}; its classes: {', '.join(spec.classes)}")
    return spec.classes.index(score)


class JetTagger:
    """One class's score (P(top) by default), or every class's, for every jet of a collection, with the
    jets' jagged layout."""

    def __init__(
        self,
        model,
        config: InferenceConfig | Session | None = None,
        score: str | None = None,
        **settings,
    ):
        """``model``: a name or a ModelSpec.  ``config``: an InferenceConfig, or a
        :class:`hepinfer.Session` whose current settings are read at every call (a toggle in the
        notebook panel applies to the next chunk scored here, and to every run submitted to Dask after
        it); None: the ``HEPINFER_*`` variables of the environment, read here, on the submit side
        (:mod:`hepinfer.config`).  ``settings``: fields that override the config's.  ``score``: the
        class whose score is returned (default "top" when the model has it, else its last class), or
        ``"all"``: every class, a record with one field per class, from one scoring call."""
        live = isinstance(config, Session) and not settings
        self.settings = config if live else resolve_config(config, **settings)
        self.model = model if isinstance(model, Model) else Model(resolve_spec(model, self.config))
        self.spec = self.model.spec
        self.every = score == ALL
        self.column = class_column(self.spec, None if self.every else score)
        self.score_name = ALL if self.every else self.spec.classes[self.column]
        self.model.builder  # noqa: B018 - a model without input builder cannot tag jets: say so now

    @property
    def config(self) -> InferenceConfig:
        return resolve_config(self.settings)

    def __dask_tokenize__(self):
        return ("hepinfer.JetTagger", self.spec.name, self.score_name, self.config.cache_key())

    def __repr__(self) -> str:
        return f"JetTagger({self.spec.name!r}, mode={self.config.mode!r}, score={self.score_name!r})"

    @property
    def scorer(self) -> Scorer:
        return scorer_for(self.spec, self.config)

    def __call__(self, jets, constituents):
        """The chosen class's score per jet (float32), jagged like ``jets``; with ``score="all"`` a
        record of every class's score per jet."""
        return self.tag(jets, constituents)["score"]

    def scores(self, jets, constituents):
        """Every class's score per jet from one scoring call: a record with one float32 field per class
        (``out.top``, ``out["qcd"]``), jagged like ``jets``."""
        return self._every_class()(jets, constituents)

    def _every_class(self) -> JetTagger:
        if self.every:
            return self
        tagger = copy.copy(self)
        tagger.every, tagger.score_name = True, ALL
        return tagger

    def tag(self, jets, constituents):
        """Per jet: ``score`` (the chosen class's score, P(top) by default, float32; a record of every
        class's with ``score="all"``), ``remote`` (True where the score came from the server, False
        where it was computed locally), ``fallback`` (True where the server was asked, failed every
        retry, and the score was computed locally) and ``nonfinite`` (True where the jet's inputs held
        NaN / inf, replaced by 0: :func:`hepinfer.features.common.finite_inputs`), jagged like
        ``jets``.  The run summary counts them to report the mode actually used, chunk by chunk, on
        every worker."""
        kind = array_kind(jets, constituents)  # the one decision: dask, typetracer or eager
        if kind == DASK:
            import dask_awkward as dak

            return dak.map_partitions(self._tag, jets, constituents, label=f"hepinfer-{self.spec.name}")
        return self._tag(jets, constituents, kind)

    def _tag(self, jets, constituents, kind: str | None = None):
        if (kind or array_kind(jets, constituents)) == TYPETRACER:
            self.model.touch_inputs(jets, constituents)  # touches exactly the columns it reads; no server
            like = plain(jets)["pt"]
            zeros = ak.values_astype(ak.zeros_like(like), np.float32)
            return ak.zip(
                {
                    "score": ak.zip({c: zeros for c in self.spec.classes}) if self.every else zeros,
                    "remote": ak.values_astype(ak.zeros_like(like), bool),
                    "fallback": ak.values_astype(ak.zeros_like(like), bool),
                    "nonfinite": ak.values_astype(ak.zeros_like(like), bool),
                }
            )
        return self.tag_report(jets, constituents)[0]

    def tag_report(self, jets, constituents):
        """Eager jets only: :meth:`tag`'s output and the scoring call's
        :class:`hepinfer.scorer.CallReport` (remote attempts, fallback)."""
        return self._finish(self.scorer, self.model.build_inputs(jets, constituents), _counts(jets))

    def submit(self, jets, constituents) -> Future:
        """Eager jets only: build the inputs now, in this thread, and score them in this process'
        request pool; the future's result is what :meth:`tag_report` returns."""
        scorer = self.scorer
        inputs = self.model.build_inputs(jets, constituents)
        return request_pool(scorer.config.max_in_flight).submit(self._finish, scorer, inputs, _counts(jets))

    def _finish(self, scorer: Scorer, inputs, counts):
        inputs, nonfinite = finite_inputs(inputs)  # NaN / inf -> 0, counted (features.common)
        outputs, report = scorer.score_report(inputs)
        first = outputs[self.spec.output_names[0]]
        if self.every:
            scores = ak.zip({c: first[:, i].astype(np.float32) for i, c in enumerate(self.spec.classes)})
        else:
            scores = first[:, self.column].astype(np.float32)
        flat = ak.zip(
            {
                "score": scores,
                "remote": np.full(len(first), report.where == "remote"),
                "fallback": np.full(len(first), report.fallback),
                "nonfinite": nonfinite,
            },
            depth_limit=1,
        )
        return (flat if counts is None else ak.unflatten(flat, counts)), report


def _counts(jets):
    jets = plain(jets)
    return ak.num(jets, axis=1) if jets.ndim == 2 else None


def __getattr__(name: str):
    """``triton_wrapper`` (:mod:`hepinfer.ml_tools`), imported on first use: it needs coffea itself."""
    if name == "triton_wrapper":
        from hepinfer.ml_tools import triton_wrapper

        return triton_wrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
