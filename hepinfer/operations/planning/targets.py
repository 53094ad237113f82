"""Where ``hepinfer profile`` measures: the embedded server (:class:`EmbeddedTarget`, started
for each server-side configuration) or a remote server (:class:`~.remote.RemoteTarget`, where only
the client's load varies).

A target's :meth:`~Target.measure` serves one :class:`ServingConfig` under its client load: toy
inputs of ``request_rows`` rows, ``concurrency`` threads calling back to back for ``duration_s``
(:func:`hepinfer.operations.bench.harness.closed_loop`, one hepinfer Scorer with ``retries=0``), while a
sampler reads the server's memory and the GPU's utilisation every :data:`SAMPLE_S`, and the server's
metrics before and after give queue and compute time per request.  Memory is the peak during the
load: on a GPU the server's device memory (:class:`~.devices.GpuProbe`), on the CPU the resident
memory of tritonserver and its python-backend stubs; a remote server's comes from its own GPU
metrics when it publishes them, else it is 0 (not measured).  A configuration that fails (a server
that does not start, a request that fails) is recorded with ``errors`` and zero throughput, and
its reason is kept in :attr:`Target.problems`.

:meth:`~Target.colocate` serves several models at once, each in its best configuration, and
measures each alone (the others idle) and all together (a shared start), as an
:class:`~.schema.Interference`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from hepinfer import paths
from hepinfer.config import InferenceConfig
from hepinfer.errors import HepinferError
from hepinfer.logs import get_logger
from hepinfer.operations.bench.harness import closed_loop, closed_loops
from hepinfer.operations.bench.process_memory import process_tree, rss_bytes
from hepinfer.operations.planning.devices import GpuProbe, detect_hardware
from hepinfer.operations.planning.schema import Hardware, Interference, Measurement, ServingConfig
from hepinfer.operations.planning.search import server_side

log = get_logger(__name__)
SAMPLE_S = 0.2
MAX_REQUEST_BYTES = 256 * 2**20  # one request per call: the client does not split a profiled request


def is_network(spec) -> bool:
    """Whether the torch engine runs the model of ``spec`` (its ModelSpec; hepinfer's networks)."""
    from hepinfer.models.architectures.torch_export import NETWORKS

    return spec.name in NETWORKS and spec.engine == "onnxruntime" and spec.artefact_file is None


class Sampler:
    """Reads ``memory()`` and ``utilisation()`` every :data:`SAMPLE_S` in a thread: the peak memory
    and the mean utilisation (None when nothing answered)."""

    def __init__(self, memory, utilisation=None):
        self._memory, self._utilisation = memory, utilisation
        self.peak, self.busy = 0, []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        value = self._memory()
        self.peak = max(self.peak, value or 0)
        if self._utilisation is not None:
            u = self._utilisation()
            if u is not None:
                self.busy.append(u)

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self._read()

    def __enter__(self) -> Sampler:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._read()

    @property
    def utilisation(self) -> float | None:
        return sum(self.busy) / len(self.busy) if self.busy else None


def _per_request(diff: dict, model: str) -> tuple[float, float, int]:
    """(queue µs, compute µs) per request and the failed requests, from a metrics difference."""
    row = diff.get(model, {})
    requests = row.get("requests", 0.0)
    if not requests:
        return 0.0, 0.0, int(row.get("failures", 0.0))
    return row.get("queue_us", 0.0) / requests, row.get("compute_infer_us", 0.0) / requests, int(row.get("failures", 0))


def failed(config: ServingConfig) -> Measurement:
    return Measurement(config, throughput=0.0, p50_ms=0.0, p99_ms=0.0, memory_bytes=0, errors=1)


def loops_together(jobs: dict, duration_s: float) -> dict[str, float]:
    """Every job ``{name: (call, inputs, concurrency)}`` at once, released together after all have
    warmed up: rows/s of each."""
    latencies, elapsed = closed_loops(jobs, duration_s)
    return {name: len(latencies[name]) * len(next(iter(jobs[name][1].values()))) / elapsed for name in jobs}


class Target:
    """What the embedded and the remote target share: scorers, toy inputs and the load.  ``specs``:
    {name: ModelSpec} of the models given to :meth:`start_config` as ModelSpecs (the embedded
    target's); a Scorer of a model named otherwise finds it on the server (a remote target's)."""

    kind = ""
    url = ""
    metrics_url: str | None = None
    hardware: Hardware

    def __init__(self, duration_s: float, headers: dict | None = None):
        self.duration_s = duration_s
        self.headers = dict(headers or {})
        self.problems: list[str] = []
        self._scorers: dict = {}
        self._inputs: dict = {}
        self.specs: dict = {}

    def scorer(self, model: str):
        from hepinfer.scorer import Scorer

        key = (self.url, model)
        if key not in self._scorers:
            config = InferenceConfig(
                mode="remote",
                url=self.url,
                retries=0,
                timeout_s=600.0,
                max_request_bytes=MAX_REQUEST_BYTES,
                headers=self.headers,
            )
            self._scorers[key] = Scorer(self.specs.get(model, model), config=config)
        return self._scorers[key]

    def inputs(self, spec, rows: int):
        """Toy inputs of the model of ``spec`` (its ModelSpec), ``rows`` rows."""
        from hepinfer.models.toy import toy_inputs

        if (spec.name, rows) not in self._inputs:
            self._inputs[spec.name, rows] = toy_inputs(spec, rows, seed=rows)
        return self._inputs[spec.name, rows]

    def _close_scorers(self) -> None:
        for scorer in self._scorers.values():
            scorer.close()
        self._scorers.clear()

    def _metrics(self) -> dict | None:
        if not self.metrics_url:
            return None
        from hepinfer.serving.triton_metrics import model_metrics

        try:
            return model_metrics(self.metrics_url)
        except (OSError, ValueError) as err:
            log.debug("metrics of %s not read: %s", self.metrics_url, err)
            return None

    def memory(self) -> int | None:
        return None

    def utilisation(self) -> float | None:
        return None

    def _load(self, config: ServingConfig) -> Measurement:
        """``config``'s client load on the server that serves it now."""
        from hepinfer.serving.triton_metrics import difference

        scorer = self.scorer(config.model)
        x = self.inputs(scorer.spec, config.request_rows)
        before = self._metrics()
        with Sampler(self.memory, self.utilisation) as sampler:
            result = closed_loop(scorer, x, config.concurrency, self.duration_s)
        after = self._metrics()
        queue_us, compute_us, failures = 0.0, 0.0, 0
        if before is not None and after is not None:
            queue_us, compute_us, failures = _per_request(difference(after, before), config.model)
        return Measurement(
            config,
            throughput=result["rows_per_s"],
            p50_ms=result["p50_ms"],
            p99_ms=result["p99_ms"],
            memory_bytes=int(sampler.peak),
            gpu_utilisation=sampler.utilisation,
            queue_us=queue_us,
            compute_us=compute_us,
            errors=failures,
        )

    def measure(self, config: ServingConfig) -> Measurement:
        try:
            self._serve([config])
            return self._load(config)
        except HepinferError as err:
            self.problems.append(f"{config.key()}: {err}")
            log.warning("profile %s failed: %s", config.key(), err)
            return failed(config)

    def colocate(self, configs: list[ServingConfig]) -> Interference:
        """Each model alone (the others served but idle) and all at once, in their ``configs``."""
        self._serve(configs)
        alone = {c.model: self._load(c).throughput for c in configs}
        jobs = {}
        for c in configs:
            scorer = self.scorer(c.model)
            jobs[c.model] = (scorer, self.inputs(scorer.spec, c.request_rows), c.concurrency)
        together = loops_together(jobs, self.duration_s)
        return Interference(models=tuple(alone), alone=alone, together=together)

    def _serve(self, configs: list[ServingConfig]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._close_scorers()


class EmbeddedTarget(Target):
    """The embedded server on ``device``, started again whenever the server-side configuration
    changes (a repository written for exactly the configurations asked for)."""

    kind = "embedded"

    def __init__(self, device: str = "cpu", engine: str = "default", duration_s: float = 5.0):
        super().__init__(duration_s)
        self.device, self.engine = device, engine
        self.hardware = detect_hardware(device)
        self.probe = GpuProbe(device) if device != "cpu" else None
        if self.probe is not None and not self.probe.available:
            self.problems.append(f"{device}: neither NVML (pynvml) nor nvidia-smi answers: GPU memory not measured")
        self.server = None
        self._served: tuple | None = None
        paths.runs_dir().mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="profile-", dir=paths.runs_dir()))
        self._repositories = 0

    def start_config(self, spec, request_rows: int, concurrency: int) -> ServingConfig:
        """The search's start for the model of ``spec`` (its ModelSpec): the networks on the target's
        engine and device, other models on their own engine on the CPU (or the null engine, which
        answers zeros for all)."""
        network = is_network(spec)
        self.specs[spec.name] = spec
        return ServingConfig(
            model=spec.name,
            max_batch_size=spec.max_batch_size,
            engine=self.engine if network or self.engine == "null" else "default",
            device=self.device if network else "cpu",
            request_rows=request_rows,
            concurrency=concurrency,
        )

    def memory(self) -> int | None:
        if self.server is None or self.server.pid is None:
            return None
        pids = process_tree(self.server.pid) - {self.server.pid}  # tritonserver and its stubs, not the guard
        if self.probe is not None and any(c.device != "cpu" for c in self._served or ()):
            return self.probe.memory_used(pids)
        return rss_bytes(pids)

    def utilisation(self) -> float | None:
        return self.probe.utilisation() if self.probe is not None else None

    def _repository(self, configs: list[ServingConfig]) -> Path:
        from hepinfer.serving.repository import RepositoryOptions, write_repository

        self._repositories += 1
        out = self.workdir / f"repository-{self._repositories}"
        for c in configs:
            write_repository(
                out,
                RepositoryOptions(
                    models=(c.model,),
                    instances=c.instances,
                    dynamic_batching=c.dynamic_batching,
                    max_queue_delay_us=c.max_queue_delay_us,
                    max_batch_size={c.model: c.max_batch_size} if c.max_batch_size else {},
                    engine=c.engine,
                    device=c.device,
                    precision=c.precision,
                    compiled=c.compiled,
                ),
            )
        return out

    def _serve(self, configs: list[ServingConfig]) -> None:
        from hepinfer.serving.server import EmbeddedServer, ServerOptions

        wanted = tuple(server_side(c) for c in configs)
        if wanted == self._served and self.server is not None and self.server.is_running():
            return
        self._stop()
        repository = self._repository(configs)
        torch = any(c.engine == "torch" for c in configs)
        device = next((c.device for c in configs if c.device != "cpu"), "cpu")
        if self.probe is not None:
            self.probe.reset_baseline()
        options = ServerOptions(
            models=tuple(c.model for c in configs),
            repository=repository,
            engine="torch" if torch else "default",
            device=device if torch else "cpu",
        )
        self.server = EmbeddedServer(options).start()
        self._served = wanted
        served = "; ".join(c.key().replace(" r0 c0", "") for c in wanted)
        log.info("profile: embedded server at %s (pid %s) serving %s", self.server.url, self.server.pid, served)

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    @property
    def metrics_url(self) -> str | None:
        return self.server.metrics_url if self.server is not None else None

    def _stop(self) -> None:
        self._close_scorers()
        if self.server is not None:
            self.server.stop()
        self.server, self._served = None, None

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
