"""This process' Scorers and request threads, shared by every tagger and wrapper that scores here
(:class:`hepinfer.coffea.JetTagger`, :class:`hepinfer.ml_tools.triton_wrapper`): one Scorer (and
with it one Triton client) per (model, settings), created on first use and reused by every chunk the
process scores; closed before the interpreter tears grpc down."""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor

from hepinfer.caching import ProcessCache
from hepinfer.config import InferenceConfig
from hepinfer.models.spec import ModelSpec
from hepinfer.scorer import Scorer

SCORERS: ProcessCache[Scorer] = ProcessCache()
POOLS: ProcessCache[ThreadPoolExecutor] = ProcessCache()


def scorer_for(spec: ModelSpec, config: InferenceConfig) -> Scorer:
    """This process' Scorer for (model, config), created on first use and reused by every chunk."""
    key = (spec.name, config.cache_key())
    scorer = SCORERS.get(key, lambda: Scorer(spec, config=config))
    if scorer.spec != spec:  # the name was declared again (replaced): a Scorer of the new declaration
        SCORERS.pop(key)
        scorer = SCORERS.get(key, lambda: Scorer(spec, config=config))
    return scorer


def request_pool(size: int) -> ThreadPoolExecutor:
    """This process' pool of ``size`` request threads (created on first use)."""
    return POOLS.get(size, lambda: ThreadPoolExecutor(max_workers=size, thread_name_prefix="hepinfer-request"))


@atexit.register
def close_scorers() -> None:
    """Close the per-process clients before the interpreter tears grpc down."""
    for scorer in SCORERS.clear():
        scorer.close()
