"""Scorer: the one scoring API.  ``Scorer(model, mode=..., url=...)(inputs) -> outputs``.

Both paths run the same engine code (hepinfer/runtime/engines.py) on the same artefact, so local
and remote scores agree to float precision.  ``mode="auto"`` probes the server once (readiness of
the model, ``probe_timeout_s``); it uses the server when it answers and the local runtime when it
does not, and falls back to local, with a warning, if the server goes away in the middle of a run.
``mode="remote"`` never falls back: it raises ServerUnavailable / InferenceTimeout / ModelNotFound.
"""

from __future__ import annotations

import threading
import warnings
from typing import Mapping

import numpy as np

from .config import InferenceConfig
from .errors import InferenceTimeout, ModelNotFound, ServerUnavailable
from .models import get_spec
from .runtime import get_runtime_class

_FALLBACK_ERRORS = (ServerUnavailable, InferenceTimeout, ModelNotFound)


class Scorer:
    """Score inputs of one model.

    >>> scorer = Scorer("particlenet", mode="remote", url="grpc://127.0.0.1:8001")  # doctest: +SKIP
    >>> scores = scorer({"points": p, "features": f, "mask": m})["softmax"]          # doctest: +SKIP

    ``config`` is an :class:`InferenceConfig`; ``mode``, ``url`` and any other keyword override
    its fields.  The object pickles without its clients (they are rebuilt where it lands).
    """

    def __init__(self, model, mode: str | None = None, url: str | None = None, *,
                 config: InferenceConfig | None = None, **settings):
        changes = {k: v for k, v in dict(mode=mode, url=url, **settings).items() if v is not None}
        base = config or InferenceConfig()
        self.config = base.replace(**changes) if changes else base
        self.spec = get_spec(model)
        self._init_local_state()

    def _init_local_state(self) -> None:
        self._lock = threading.Lock()
        self._local = None
        self._remote = None
        self._use_remote: bool | None = None
        self.stats = {"local_calls": 0, "remote_calls": 0, "fallbacks": 0}

    def __getstate__(self):
        return {"config": self.config, "spec": self.spec}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_local_state()

    def __dask_tokenize__(self):
        return ("hepinfer.Scorer", self.spec.name, repr(self.config))

    # -- runtimes --------------------------------------------------------------------------------
    @property
    def local(self):
        if self._local is None:
            with self._lock:
                if self._local is None:
                    self._local = get_runtime_class("local")(self.spec, threads=self.config.threads)
        return self._local

    @property
    def remote(self):
        if self._remote is None:
            with self._lock:
                if self._remote is None:
                    self._remote = get_runtime_class("triton")(self.spec, config=self.config)
        return self._remote

    @property
    def mode_used(self) -> str | None:
        """"local" or "remote" once decided (always at once for mode local/remote; after the first call for auto)."""
        if self.config.mode != "auto":
            return self.config.mode
        return None if self._use_remote is None else ("remote" if self._use_remote else "local")

    def _probe(self) -> bool:
        try:
            return self.remote.is_ready()
        except _FALLBACK_ERRORS:
            return False

    # -- scoring ---------------------------------------------------------------------------------
    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.score(inputs)[0]

    def score(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
        """Outputs and where they were computed: ``(outputs, "local" | "remote")``."""
        # Both runtimes validate the inputs against the ModelSpec first thing (names the tensor at
        # fault) before anything is loaded or sent, so the Scorer does not do it a second time.
        mode = self.config.mode
        if mode == "local":
            return self._call_local(inputs), "local"
        if mode == "remote":
            return self._call_remote(inputs), "remote"
        if self._use_remote is None:
            self._use_remote = self._probe()
        if self._use_remote:
            try:
                return self._call_remote(inputs), "remote"
            except _FALLBACK_ERRORS as err:
                self._use_remote = False
                self.stats["fallbacks"] += 1
                warnings.warn(f"hepinfer: {self.spec.name}: falling back to local inference: {err}", stacklevel=3)
        return self._call_local(inputs), "local"

    def _call_local(self, inputs):
        out = self.local.infer(inputs)
        self.stats["local_calls"] += 1
        return out

    def _call_remote(self, inputs):
        out = self.remote.infer(inputs)
        self.stats["remote_calls"] += 1
        return out

    def close(self) -> None:
        for rt in (self._local, self._remote):
            if rt is not None:
                rt.close()

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
        rows += [("inputs", ", ".join(f"{t.name} {t.dtype}(N,{','.join(map(str, t.shape))})" for t in self.spec.inputs)),
                 ("calls", f"{self.stats['local_calls']} local, {self.stats['remote_calls']} remote, "
                           f"{self.stats['fallbacks']} fallbacks")]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table><caption>hepinfer.Scorer</caption>{body}</table>"
