"""The operations wing: running and measuring servers.

* :mod:`hepinfer.operations.fleet` — ``hepinfer fleet``: replicas behind HAProxy, Prometheus, the
  autoscaler, and the SuperSONIC export;
* :mod:`hepinfer.operations.planning` — ``hepinfer profile`` and ``hepinfer plan``: a model measured on a
  device, and the fleet sized from those measurements;
* :mod:`hepinfer.operations.bench` — ``hepinfer bench``: benchmark studies on one harness.

Operations may use the analysis and the ML wings (a bench runs the main job on generated samples);
neither of them imports operations (``lint-imports``).
"""
