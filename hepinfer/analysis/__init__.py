"""The analysis wing: what a physicist runs over files.

* :mod:`hepinfer.analysis.job` — ``hepinfer run``, the main job (the example processor over files);
* :mod:`hepinfer.analysis.processor` — the example coffea processor,
  :class:`~hepinfer.analysis.processor.TopTagProcessor`;
* :mod:`hepinfer.analysis.clusters` — Dask clusters: a LocalCluster, HTCondor workers, an existing
  scheduler, and the worker plug-ins they carry (:mod:`hepinfer.analysis.worker_plugins`);
* :mod:`hepinfer.analysis.selection`, :mod:`hepinfer.analysis.cms_compare` — the job's jet selection and
  its comparison with CMS's own scores.

It imports the core and the figures, never the ML or operations wings (``lint-imports``).
"""
