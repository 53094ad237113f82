"""Dask worker plugins hepinfer registers on the clusters it starts or attaches to (imported only
when a cluster is used: it needs ``distributed``)."""

from __future__ import annotations

from distributed import WorkerPlugin

from .clusters import quiet_schema_warnings


class QuietSchemaWarnings(WorkerPlugin):
    """Applies :func:`quiet_schema_warnings` in every Dask worker process."""

    name = "hepinfer-quiet-schema-warnings"

    def setup(self, worker):
        quiet_schema_warnings()
