"""The registered studies by name: each study module's ``STUDY`` (the harness looks them up here)."""

from __future__ import annotations

from hepinfer.operations.bench import client, configs, fleet_load, gpu, load, models, peer, perf_analyzer, shm, workers
from hepinfer.operations.bench.study import Study

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        models.STUDY,
        configs.STUDY,
        workers.STUDY,
        peer.STUDY,
        perf_analyzer.STUDY,
        shm.STUDY,
        load.STUDY,
        gpu.STUDY,
        client.STUDY,
        fleet_load.STUDY,
    )
}
