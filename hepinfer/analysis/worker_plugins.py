"""Dask worker plugins hepinfer registers on the clusters it starts or attaches to (imported only
when a cluster is used: it needs ``distributed``)."""

from __future__ import annotations

import contextlib
import os
import secrets

from distributed import WorkerPlugin

from hepinfer.analysis.schema_warnings import quiet_schema_warnings
from hepinfer.analysis.server_reach import reach_problem
from hepinfer.config import InferenceConfig
from hepinfer.logs import get_logger

log = get_logger(__name__)


class QuietSchemaWarnings(WorkerPlugin):
    """Applies :func:`quiet_schema_warnings` in every Dask worker process."""

    name = "hepinfer-quiet-schema-warnings"

    def setup(self, worker):
        quiet_schema_warnings()


class ServerCheck(WorkerPlugin):
    """A run's server, as each worker meets it when it joins (hepinfer.analysis.server_reach): the run's
    token put in the worker's environment under the variable the config names (``token_env``), then
    the worker's check that the server at the config's URL answers and has every model ready.  The
    answer stays on the worker (``problem``: None, or (why, the error's text)), read back with
    :func:`server_problem`; setup never fails, so that every worker is heard.  The token travels
    once, inside this plugin over Dask's connection (never in the tasks' config), and leaves the
    worker's environment at teardown, when the run unregisters the plugin."""

    def __init__(self, name: str, config: InferenceConfig, specs, token: str | None = None):
        self.name = name
        self.config = config
        self.specs = tuple(specs)
        self._token = token
        self.problem: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return f"ServerCheck({self.name!r}, url={self.config.url!r}, token={'<hidden>' if self._token else None})"

    def setup(self, worker):
        if self._token is not None:
            os.environ[self.config.token_env] = self._token
        self.problem = reach_problem(self.config, self.specs)
        if self.problem is not None:
            log.warning(f"worker {worker.address} {self.problem[0]}: {self.problem[1]}")

    def teardown(self, worker):
        if self._token is not None:
            os.environ.pop(self.config.token_env, None)


def server_problem(name: str, dask_worker=None) -> tuple[str, str] | None:
    """What the worker's :class:`ServerCheck` ``name`` found (run with ``client.run``)."""
    plugin = dask_worker.plugins.get(name)
    return None if plugin is None else plugin.problem


@contextlib.contextmanager
def server_checked(client, config: InferenceConfig, specs, token: str | None = None):
    """Register a :class:`ServerCheck` on ``client``'s cluster for the run (its workers now, and those
    that join later); yields {worker host: {"reason", "detail"}} for the workers that cannot use the
    server; unregisters it at the end (the token leaves the workers and the scheduler)."""
    from distributed.comm import get_address_host

    name = f"hepinfer-server-check-{secrets.token_hex(4)}"
    client.register_plugin(ServerCheck(name, config, specs, token), name=name)
    try:
        found = client.run(server_problem, name)
        yield {get_address_host(addr): {"reason": p[0], "detail": p[1]} for addr, p in sorted(found.items()) if p}
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception as err:  # noqa: BLE001 - a cluster going away takes the plugin with it
            log.debug(f"unregistering {name}: {err}")
