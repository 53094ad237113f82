"""Scorer: the one scoring API.  ``Scorer(model, mode=..., url=...)(inputs) -> outputs``.

Both paths run the same engine code (hepinfer/runtime/engines.py) on the same artefact, so local
and remote scores agree to float precision.  A model may have several servers (``url`` with URLs
separated by commas, or ``model_servers``), tried in CMSSW SONIC's order
(:mod:`hepinfer.runtime.failover`): a session is opened on a server before its first inference
(:mod:`hepinfer.runtime.sessions`); a call is retried on the same server
(``InferenceConfig.retries`` and the other retry settings, :mod:`hepinfer.retry`) when the server is
unreachable, does not answer in time, or lost a model it had served earlier in this process (it is
restarting), with a fresh connection before each retry; then the whole call goes to the next
server, and the failed one is set aside for ``reprobe_interval_s``.

* ``mode="remote"`` never falls back: when every server failed it raises ServerUnavailable /
  InferenceTimeout / ModelNotFound, whose message names the model and, per server, what failed.
* ``mode="auto"`` waits at most ``probe_timeout_s`` for a session and uses the servers while they
  answer, the local runtime when none does.  A call that failed on every server is computed
  locally (a *fallback*, with a warning), so no row is lost or scored twice.  A set-aside server is
  asked again after ``reprobe_interval_s`` and used again once it answers.

``stats`` counts calls, retries, fallbacks, failovers, returns to a server, and rows per server and
local; :meth:`Scorer.score_report` tells the caller what happened to one call;
:meth:`Scorer.scores` names the first output's columns by the model's classes.

A model name the registry does not know (:mod:`hepinfer.models.registry`) is looked up on the server
with ``mode="remote"``: its spec is read from the server's metadata and registered in this process
(:mod:`hepinfer.runtime.discovery`).  Such a model has no artefact, so ``mode="local"`` and
``mode="auto"`` refuse it when the Scorer is made (auto would have nothing to fall back to).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hepinfer.caching import ProcessCache
from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError, InferenceTimeout, ModelNotFound, ServerUnavailable
from hepinfer.models import get_spec
from hepinfer.models.spec import ModelSpec
from hepinfer.retry import Attempts
from hepinfer.runtime import get_runtime_class
from hepinfer.session import Session, resolve_config

_FALLBACK_ERRORS = (ServerUnavailable, InferenceTimeout, ModelNotFound)
LOCAL = "local"  # the key of local rows in Scorer.stats["rows"]


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
        from hepinfer.runtime.discovery import discover

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
    attempts: int = 0  # remote inference attempts made, on every server (0: no server was asked)
    fallback: bool = False  # a server was asked, failed every attempt, and the call ran locally
    server: str | None = None  # the URL of the server that computed the outputs (None: local)
    rows: int = 0  # rows scored by the call
    failovers: int = 0  # servers given up on during the call (no session, or retries spent)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


def rows_by_server(reports) -> dict[str, int]:
    """Rows scored per server (URL) by the calls of ``reports`` (CallReports); local calls aside."""
    out: dict[str, int] = {}
    for report in reports:
        if report.server is not None:
            out[report.server] = out.get(report.server, 0) + report.rows
    return out


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
        from hepinfer.runtime.failover import Servers

        self._runtimes: ProcessCache = ProcessCache()
        self.servers = Servers(self.spec, self.config)  # the model's servers, in order (runtimes per process)
        self._where: str | None = None
        self._stats_lock = threading.Lock()
        self.stats = {
            "local_calls": 0,
            "remote_calls": 0,
            "retried_calls": 0,
            "retries": 0,
            "fallbacks": 0,
            "failovers": 0,
            "returns": 0,
            "rows": {LOCAL: 0}
            | ({ep.server: 0 for ep in self.servers.endpoints} if self.config.mode != "local" else {}),
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
        """This process' Triton runtime of the model on its first server (created on first use)."""
        get_runtime_class("triton")  # says which extra to install when tritonclient is missing
        return self.servers.runtime(self.servers.endpoints[0])

    @property
    def mode_used(self) -> str | None:
        """ "local" or "remote": always for mode local/remote; for auto, where the last call ran (None before)."""
        return self.config.mode if self.config.mode != "auto" else self._where

    def _count(self, where: str | None = None, rows: int = 0, **deltas) -> None:
        with self._stats_lock:
            for k, v in deltas.items():
                self.stats[k] += v
            if where is not None:
                self.stats["rows"][where] = self.stats["rows"].get(where, 0) + rows

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
        """Outputs and a :class:`CallReport` (where, server, remote attempts, fallback, rows)."""
        # The inputs are checked against the ModelSpec (naming the tensor at fault) before anything is
        # loaded or sent: by the local runtime, and here before any server is asked.
        mode = self.config.mode
        if mode == "local":
            return self._call_local(inputs)
        was = self._where
        wait_s = self.config.session_timeout_s if mode == "remote" else self.config.probe_timeout_s
        outputs, report, outcome = self._call_remote(inputs, wait_s)
        if outputs is not None:
            if was == "local" and outcome.returned:
                warnings.warn(
                    f"hepinfer: {self.spec.name}: the server at {report.server} is back; using it again", stacklevel=2
                )
            return outputs, report
        failure = self._failure(outcome)
        if mode == "remote":
            error = outcome.error or ServerUnavailable("")
            # raised outside an except block: no __context__ to pickle (Dask)
            raise type(error)(failure) from error.__cause__
        outputs, local = self._call_local(inputs)
        if report.attempts:  # a server was asked to score this call and failed: a fallback
            self._count(fallbacks=1)
            warnings.warn(f"hepinfer: {self.spec.name}: falling back to local inference: {failure}", stacklevel=2)
        return outputs, CallReport("local", report.attempts, bool(report.attempts), None, local.rows, report.failovers)

    def _failure(self, outcome) -> str:
        where = "; ".join(outcome.notes) or "every server is set aside"
        return (
            f"{outcome.error} [model {self.spec.name!r}, {where}]"
            if outcome.error
            else f"model {self.spec.name!r}: {where}"
        )

    def _call_local(self, inputs):
        out = self.local.infer(inputs)
        rows = len(next(iter(out.values())))
        self._where = "local"
        self._count(LOCAL, rows, local_calls=1)
        return out, CallReport("local", rows=rows)

    def _call_remote(self, inputs, session_wait_s: float):
        """The call on the model's servers (:mod:`hepinfer.runtime.failover`): (outputs, report, outcome);
        outputs None when every server failed."""
        from hepinfer.runtime import empty_outputs
        from hepinfer.runtime.failover import Outcome

        if self.spec.validate(inputs) == 0:  # before any server is asked; an empty batch asks none
            self._count(remote_calls=1)
            return empty_outputs(self.spec), CallReport("remote"), Outcome()
        get_runtime_class("triton")  # says which extra to install when tritonclient is missing
        attempts = Attempts()
        outcome = self.servers.call(
            inputs, attempts, session_wait_s=session_wait_s, every_if_none=self.config.mode == "remote"
        )
        if attempts.count > 1:
            self._count(retried_calls=1, retries=attempts.count - 1)
        if outcome.outputs is None:
            return None, CallReport("local", attempts.count, failovers=outcome.failovers), outcome
        rows = len(next(iter(outcome.outputs.values())))
        server = outcome.endpoint.server
        self._where = "remote"
        self._count(server, rows, remote_calls=1, returns=int(outcome.returned), failovers=int(outcome.failovers > 0))
        return outcome.outputs, CallReport("remote", attempts.count, False, server, rows, outcome.failovers), outcome

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
        self.servers.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        servers = ",".join(ep.server for ep in self.servers.endpoints)
        where = f", url={servers!r}" if self.config.mode != "local" else ""
        return f"Scorer({self.spec.name!r}, mode={self.config.mode!r}{where})"

    def _repr_html_(self) -> str:
        rows = [("model", self.spec.name), ("mode", self.config.mode), ("in use", self.mode_used or "not decided yet")]
        if self.config.mode != "local":
            rows.append(("servers", ", ".join(str(ep) for ep in self.servers.endpoints)))
        rows += [
            ("inputs", ", ".join(f"{t.name} {t.dtype}(N,{','.join(map(str, t.shape))})" for t in self.spec.inputs)),
            (
                "calls",
                f"{self.stats['local_calls']} local, {self.stats['remote_calls']} remote, "
                f"{self.stats['retries']} retries, {self.stats['fallbacks']} fallbacks, "
                f"{self.stats['failovers']} failovers",
            ),
            ("rows", ", ".join(f"{where} {n}" for where, n in self.stats["rows"].items())),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table><caption>hepinfer.Scorer</caption>{body}</table>"
