"""Scorer: the one scoring API.  ``Scorer(model, mode=..., url=...)(inputs) -> outputs``.

Both paths run the same engine code (hepinfer/runtime/engines.py) on the same artefact, so local
and remote scores agree to float precision.  Remote calls are retried (``InferenceConfig.retries``
and the other retry settings, :mod:`hepinfer.retry`) when the server is unreachable, does not
answer in time, or lost a model it had served earlier in this process (it is restarting); a fresh
connection is made before each retry after a refused one.

* ``mode="remote"`` never falls back: when the retries are spent it raises ServerUnavailable /
  InferenceTimeout / ModelNotFound, whose message names the URL, the model and the attempts.
* ``mode="auto"`` probes the server (readiness of the model, ``probe_timeout_s``) and uses it when it
  answers, the local runtime when it does not.  A call whose retries are spent is computed locally
  (a *fallback*, with a warning), so no row is lost or scored twice.  While on the local runtime,
  the server is probed again at most every ``reprobe_interval_s`` and used again once ready.

``stats`` counts calls, retries, fallbacks and returns to the server; :meth:`Scorer.score_report`
tells the caller what happened to one call; :meth:`Scorer.scores` names the first output's columns
by the model's classes.

A model name the registry does not know (:mod:`hepinfer.models.registry`) is looked up on the server
with ``mode="remote"``: its spec is read from the server's metadata and registered in this process
(:mod:`hepinfer.runtime.discovery`).  Such a model has no artefact, so ``mode="local"`` and
``mode="auto"`` refuse it when the Scorer is made (auto would have nothing to fall back to).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .caching import ProcessCache
from .config import InferenceConfig
from .errors import ConfigError, InferenceTimeout, ModelNotFound, ServerUnavailable
from .models import get_spec
from .models.spec import ModelSpec
from .retry import Attempts, call_with_retries
from .runtime import get_runtime_class
from .session import Session, resolve_config

_FALLBACK_ERRORS = (ServerUnavailable, InferenceTimeout, ModelNotFound)


def resolve_spec(model, config: InferenceConfig) -> ModelSpec:
    """The ModelSpec of ``model`` for scoring with ``config``: from the registry, else (mode remote)
    from the server; ConfigError for a model without artefact in mode local or auto."""
    try:
        spec = get_spec(model)
    except ModelNotFound as err:
        if config.mode != "remote" or not isinstance(model, str):
            raise ModelNotFound(
                f"{err}; a model that only a server has is scored with mode='remote' (mode {config.mode!r} "
                "needs its artefact declared here)"
            ) from None
        from .runtime.discovery import discover

        spec = discover(model, config)
    if spec.remote_only and config.mode != "remote":
        raise ConfigError(
            f"model {spec.name!r} ({spec.source or 'engine remote'}) declares no artefact: it is scored with "
            f"mode='remote' only (mode {config.mode!r} would have no local model to run or to fall back to)"
        )
    return spec


@dataclass(frozen=True)
class CallReport:
    """What happened to one scoring call."""

    where: str  # "local" | "remote": where the returned outputs were computed
    attempts: int = 0  # remote attempts made (0: the server was not asked)
    fallback: bool = False  # the server was asked, failed every attempt, and the call ran locally

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


class Scorer:
    """Score inputs of one model.

    >>> scorer = Scorer("particlenet", mode="remote", url="grpc://127.0.0.1:8001")  # doctest: +SKIP
    >>> scores = scorer({"points": p, "features": f, "mask": m})["softmax"]          # doctest: +SKIP

    ``config`` is an :class:`InferenceConfig` (taken as it is) or a :class:`hepinfer.Session` (its
    current settings); without one, the ``HEPINFER_*`` variables of the environment fill what the
    arguments leave unset (:mod:`hepinfer.config`).  ``mode``, ``url`` and any other keyword override
    the config's fields.  The object pickles without its clients (they are rebuilt where it lands).
    """

    def __init__(
        self,
        model,
        mode: str | None = None,
        url: str | None = None,
        *,
        config: InferenceConfig | Session | None = None,
        **settings,
    ):
        changes = {k: v for k, v in dict(mode=mode, url=url, **settings).items() if v is not None}
        self.config = resolve_config(config, **changes)
        self.spec = resolve_spec(model, self.config)
        self._init_local_state()

    def _init_local_state(self) -> None:
        self._runtimes: ProcessCache = ProcessCache()
        self._use_remote: bool | None = None
        self._next_probe = 0.0
        self._stats_lock = threading.Lock()
        self.stats = {
            "local_calls": 0,
            "remote_calls": 0,
            "retried_calls": 0,
            "retries": 0,
            "fallbacks": 0,
            "returns": 0,
        }

    def __getstate__(self):
        return {"config": self.config, "spec": self.spec}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_local_state()

    def __dask_tokenize__(self):
        return ("hepinfer.Scorer", self.spec.name, self.config.cache_key())

    # -- runtimes --------------------------------------------------------------------------------
    @property
    def local(self):
        """This process' local runtime of the model (created on first use)."""
        return self._runtimes.get("local", lambda: get_runtime_class("local")(self.spec, threads=self.config.threads))

    @property
    def remote(self):
        """This process' Triton runtime of the model (created on first use)."""
        return self._runtimes.get("remote", lambda: get_runtime_class("triton")(self.spec, config=self.config))

    @property
    def mode_used(self) -> str | None:
        """ "local" or "remote" once decided (always at once for mode local/remote; after the first call for auto)."""
        if self.config.mode != "auto":
            return self.config.mode
        return None if self._use_remote is None else ("remote" if self._use_remote else "local")

    def _probe(self) -> bool:
        try:
            return self.remote.is_ready()
        except _FALLBACK_ERRORS:
            self.remote.reconnect()  # the next probe gets a fresh channel, not one in gRPC's backoff
            return False

    def _count(self, **deltas) -> None:
        with self._stats_lock:
            for k, v in deltas.items():
                self.stats[k] += v

    # -- scoring ---------------------------------------------------------------------------------
    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.score(inputs)[0]

    def scores(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The first output's columns by class name: ``{"qcd": (N,), "top": (N,)}`` for the taggers."""
        if not self.spec.classes:
            raise ConfigError(
                f"model {self.spec.name!r} declares no classes: its outputs are unnamed (use the Scorer's "
                "outputs, or declare classes)"
            )
        first = self(inputs)[self.spec.output_names[0]]
        return {name: first[..., i] for i, name in enumerate(self.spec.classes)}

    def score(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
        """Outputs and where they were computed: ``(outputs, "local" | "remote")``."""
        outputs, report = self.score_report(inputs)
        return outputs, report.where

    def score_report(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], CallReport]:
        """Outputs and a :class:`CallReport` (where, remote attempts, fallback)."""
        # Both runtimes validate the inputs against the ModelSpec first thing (names the tensor at
        # fault) before anything is loaded or sent, so the Scorer does not do it a second time.
        mode = self.config.mode
        if mode == "local":
            return self._call_local(inputs), CallReport("local")
        if mode == "remote":
            attempts = Attempts()
            return self._call_remote(inputs, attempts), CallReport("remote", attempts.count)
        if not self._use_remote and time.monotonic() >= self._next_probe:
            was = self._use_remote
            self._use_remote = self._probe()
            if not self._use_remote:
                self._next_probe = time.monotonic() + self.config.reprobe_interval_s
            elif was is False:
                self._count(returns=1)
                warnings.warn(
                    f"hepinfer: {self.spec.name}: the server at {self.config.url} is back; using it again", stacklevel=2
                )
        if self._use_remote:
            attempts = Attempts()
            try:
                return self._call_remote(inputs, attempts), CallReport("remote", attempts.count)
            except _FALLBACK_ERRORS as err:
                self._use_remote = False
                self._next_probe = time.monotonic() + self.config.reprobe_interval_s
                self._count(fallbacks=1)
                warnings.warn(f"hepinfer: {self.spec.name}: falling back to local inference: {err}", stacklevel=2)
                return self._call_local(inputs), CallReport("local", attempts.count, fallback=True)
        return self._call_local(inputs), CallReport("local")

    def _call_local(self, inputs):
        out = self.local.infer(inputs)
        self._count(local_calls=1)
        return out

    def _call_remote(self, inputs, attempts: Attempts):
        remote = self.remote
        failed = None
        try:
            # A model this process has seen ready and now misses is a restarting server: retried.
            # A model never seen (a typo, not deployed) fails at once.
            out = call_with_retries(
                lambda: remote.infer(inputs),
                self.config.backoff,
                _FALLBACK_ERRORS,
                retry_if=lambda e: remote.seen_ready or not isinstance(e, ModelNotFound),
                before_retry=lambda e: remote.reconnect(),
                attempts=attempts,
            )
        except _FALLBACK_ERRORS as err:
            failed = err
        finally:
            if attempts.count > 1:
                self._count(retried_calls=1, retries=attempts.count - 1)
        if failed is not None:  # raised here, outside the except block: no __context__ to pickle (Dask)
            raise type(failed)(
                f"{failed} [model {self.spec.name!r}, server {self.config.url}: gave up after {attempts.count} "
                f"attempt{'s' if attempts.count > 1 else ''} in {attempts.elapsed_s:.1f} s]"
            ) from failed.__cause__
        self._count(remote_calls=1)
        return out

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        where = f", url={self.config.url!r}" if self.config.mode != "local" else ""
        return f"Scorer({self.spec.name!r}, mode={self.config.mode!r}{where})"

    def _repr_html_(self) -> str:
        rows = [("model", self.spec.name), ("mode", self.config.mode), ("in use", self.mode_used or "not decided yet")]
        if self.config.mode != "local":
            rows.append(("server", self.config.url))
        rows += [
            ("inputs", ", ".join(f"{t.name} {t.dtype}(N,{','.join(map(str, t.shape))})" for t in self.spec.inputs)),
            (
                "calls",
                f"{self.stats['local_calls']} local, {self.stats['remote_calls']} remote, "
                f"{self.stats['retries']} retries, {self.stats['fallbacks']} fallbacks",
            ),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table><caption>hepinfer.Scorer</caption>{body}</table>"
