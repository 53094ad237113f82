"""The ML wing: events and models.

* :mod:`hepinfer.ml.generation` — event generation (Pythia 8 + FastJet) and the NanoAOD-like files;
* :mod:`hepinfer.ml.samples` — the demo and training samples, generated once;
* :mod:`hepinfer.ml.training` — training, evaluation (:mod:`hepinfer.ml.training.roc`) and model cards;
* :mod:`hepinfer.ml.demo` — ``hepinfer demo``: the shipped models scored locally and remotely.

It imports the core and the figures, never the analysis or operations wings (``lint-imports``).
"""
