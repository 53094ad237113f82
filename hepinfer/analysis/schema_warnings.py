"""The warnings of coffea's NanoAOD schemas that a run silences: in the job's process and, through a
worker plug-in (:mod:`hepinfer.analysis.worker_plugins`), in every Dask worker."""

from __future__ import annotations

import warnings


def quiet_schema_warnings() -> None:
    """Silence coffea's PFNano-schema warnings about cross-references to tables a file does not have
    (generated files lack SV, JetPFCands, GenJetCands, ...); every other warning stays."""
    warnings.filterwarnings("ignore", message=r"Missing cross-reference index", category=RuntimeWarning)
