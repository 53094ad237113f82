"""The demo sample: generated ttbar and QCD events, made once and cached in ``$HEPINFER_HOME/samples``.

``hepinfer run`` without ``--input``, ``hepinfer demo``, the benchmarks and the notebooks use it.
The seeds (7001 / 7002) are never used for training.
"""

from __future__ import annotations

from hepinfer.logs import get_logger

log = get_logger(__name__)

DEMO_SEEDS = {"ttbar": 7001, "qcd": 7002}
DEMO_DETECTOR = "cms"  # the detector response the shipped taggers are trained with


def demo_files(events: int) -> list:
    """The demo sample: ``events`` generated ttbar and QCD events each (seeds 7001 / 7002, never used
    in training), made once and cached in $HEPINFER_HOME/samples."""
    from hepinfer import paths
    from hepinfer.ml.generation.generate import generate

    files = []
    for process, seed in DEMO_SEEDS.items():
        # the name carries the detector response, so a cached truth-level sample is not reused
        path = paths.home() / "samples" / f"demo_{process}_{seed}_{events}_{DEMO_DETECTOR}.root"
        if not path.exists():
            log.info(f"generating {events} {process} events (seed {seed}) -> {path}")
            generate(process, events, seed, path, progress=False, detector=DEMO_DETECTOR)
        files.append(path)
    return files


def demo_sample(events: int):
    """The demo sample's selected, labelled jets."""
    from hepinfer.ml.training.dataset import load_jets

    return load_jets(demo_files(events), balance=False)
