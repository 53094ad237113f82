"""Session: the one settings object that scoring reads.

A notebook makes one (``session = hepinfer.Session()``), hands it to its taggers and processors
(``TopTagProcessor(config=session)``), and the widget panel or code changes it
(``session.set(mode="remote")``).  Whatever scores through the session reads its current
:class:`InferenceConfig` when it scores; a run started after a change uses the new settings.

Dask workers never see the session itself: pickling it gives the frozen config of that moment (a
run submitted after a toggle carries the new mode to every worker, and a worker is not changed
under a running task).  Listeners (the panel) are told of each change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hepinfer.config import InferenceConfig


class Session:
    def __init__(self, config: InferenceConfig | None = None, **changes):
        """``config`` taken as it is, or (None) the environment's settings
        (:meth:`InferenceConfig.from_env`); ``changes`` (validated) on top."""
        self._config = resolve_config(config, **changes)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[InferenceConfig], None]] = []

    @property
    def config(self) -> InferenceConfig:
        return self._config

    def set(self, **changes) -> InferenceConfig:
        """Change settings (validated: a bad value raises ConfigError and changes nothing)."""
        with self._lock:
            self._config = self._config.replace(**changes)
            config = self._config
        for listener in list(self._listeners):
            listener(config)
        return config

    def observe(self, listener: Callable[[InferenceConfig], None]) -> None:
        self._listeners.append(listener)

    def __reduce__(self):
        # what travels to a worker is the config of this moment, never the live object
        return (resolve_config, (self._config,))

    def __repr__(self) -> str:
        c = self._config
        return f"Session(mode={c.mode!r}, url={c.url!r})"

    def _repr_html_(self) -> str:
        c = self._config
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
            for k, v in (("mode", c.mode), ("server", c.url), ("timeout", f"{c.timeout_s:g} s"))
        )
        return f"<table><caption>hepinfer.Session</caption>{rows}</table>"


def resolve_config(settings=None, **overrides) -> InferenceConfig:
    """The InferenceConfig that ``settings`` stands for, with ``overrides`` (validated) on top:

    * an InferenceConfig: taken as it is (the environment is not read);
    * a Session: its current config;
    * None: the settings of :meth:`InferenceConfig.from_env`: ``overrides`` > ``HEPINFER_*``
      variables > defaults (:mod:`hepinfer.config` gives the order).

    ``Scorer``, ``JetTagger``, ``TopTagProcessor`` and ``Session`` build their config here."""
    if settings is None:
        return InferenceConfig.from_env(**overrides)
    if isinstance(settings, Session):
        config = settings.config
    elif isinstance(settings, InferenceConfig):
        config = settings
    else:
        raise TypeError(f"expected an InferenceConfig or a Session, got {type(settings).__name__}")
    return config.replace(**overrides) if overrides else config
