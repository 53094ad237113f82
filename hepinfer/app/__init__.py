"""The application layer: what hepinfer runs for a physicist, built on the core (:mod:`hepinfer`).

* :mod:`hepinfer.app.job` — ``hepinfer run``, the main job (the example processor over files);
* :mod:`hepinfer.app.processor` — the example coffea processor, :class:`~hepinfer.app.processor.TopTagProcessor`;
* :mod:`hepinfer.app.clusters` — Dask clusters: a LocalCluster, HTCondor workers, an existing scheduler;
* :mod:`hepinfer.app.panel` — the notebook control panel;
* :mod:`hepinfer.app.bench` — benchmark studies on one harness;
* :mod:`hepinfer.app.training`, :mod:`hepinfer.app.data` — training and evaluation, event generation;
* :mod:`hepinfer.app.plotting` — every figure, drawn without touching the caller's matplotlib backend.

Imports go one way: the application imports the core, the core never imports the application.
"""
