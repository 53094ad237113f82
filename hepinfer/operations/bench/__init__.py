"""Benchmarks (``hepinfer bench STUDY``): each study is a declaration (:mod:`.study`) in its own
module, run by one harness (:mod:`.harness`) that prints its table and summary and writes CSV,
markdown and a PNG.

* ``models`` — throughput against batch size and concurrency, local and on Triton;
* ``configs`` — server configurations: dynamic batching, instances;
* ``workers`` — events/s of the example job against Dask workers, local vs remote;
* ``peer`` — hepinfer's remote scoring against coffea.ml_tools.triton_wrapper;
* ``perf-analyzer`` — Triton's perf_analyzer against hepinfer's harness;
* ``shm`` — gRPC tensors against system shared memory;
* ``load`` — K client processes against one server for T seconds;
* ``gpu`` — one CPU core against the torch engine direct and served on the GPU (the paper's table);
* ``client`` — one worker's steps per jet, and its jets/s against a server that answers at once;
* ``fleet`` — Dask workers against one fixed replica and the autoscaled fleet: rows/s, queue time
  and replicas over time.

``run("configs", models=("bdt",), out_dir="bench-out")`` measures one from Python and returns its rows.
``hepinfer profile`` measures with the same closed loops (:mod:`.harness`) and resident memory
(:mod:`.process_memory`).
"""

from __future__ import annotations

from hepinfer.operations.bench.harness import run
from hepinfer.operations.bench.studies import STUDIES
from hepinfer.operations.bench.study import Study

__all__ = ["STUDIES", "Study", "run"]
