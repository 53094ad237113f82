"""Dask clusters for hepinfer jobs: a LocalCluster on a laptop, HTCondor workers at a site through
dask-jobqueue, or an existing scheduler.

How the inference settings reach the workers, one way: the processor carries its
:class:`InferenceConfig` (a small frozen dataclass) and Dask pickles it into every task; each worker
process then builds its own Scorer and Triton client on first use and reuses it for every chunk
(hepinfer.process_scorers).  No client ever travels, and a worker never reads ``HEPINFER_*``
settings from its environment.  What a worker reads from its *environment* is ``HEPINFER_HOME``
(where the model artefacts for local inference are; without them there, the trained artefacts
shipped inside the package) and, at each request, the bearer token (:mod:`hepinfer.tokens`:
``$HEPINFER_TOKEN``, the token file, WLCG Bearer Token Discovery): LocalCluster workers inherit that
environment, and HTCondor jobs (``getenv = False``) get ``HEPINFER_HOME`` alone, exported by the job
script.  The embedded server of a run whose workers are on other hosts has a token of its own, which
a worker plugin puts in each worker's environment (hepinfer.analysis.job.access).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field

from hepinfer import paths
from hepinfer.errors import ConfigError, HepinferError

CLUSTERS = ("local", "htcondor")


def warm_up() -> None:
    """Import what a chunk needs (coffea, uproot, awkward, hepinfer's plug-in) in a worker process, so
    that the first timed chunk does not pay for it (and two runs on the same cluster compare fairly)."""
    import coffea.nanoevents  # noqa: F401
    import coffea.processor  # noqa: F401


def worker_environment() -> dict[str, str]:
    """The variables a batch job's script exports: ``HEPINFER_HOME`` (the inference settings travel
    inside the tasks, pickled; never in a submit file)."""
    return {"HEPINFER_HOME": str(paths.home().resolve())}


def local_cluster(workers: int = 2, threads_per_worker: int = 1, memory_limit: str = "auto", dashboard: bool = False):
    """A ``distributed.LocalCluster`` of ``workers`` processes with ``threads_per_worker`` threads.

    One thread per worker by default: the taggers are CPU-bound in onnxruntime / xgboost, and a
    Triton client per thread is kept anyway.  ``dashboard=False`` (the default) opens no HTTP port.
    """
    from distributed import LocalCluster

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    # the scheduler's HTTP server (health, metrics) always listens somewhere: a free port unless the
    # dashboard is wanted on its usual 8787 (distributed's None would mean 8787 too, and clash)
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=":8787" if dashboard else ":0",
        scheduler_kwargs={"dashboard": dashboard},
    )


@dataclass(frozen=True)
class HTCondorSettings:
    """One HTCondor job = one Dask worker process.

    * cores / memory / disk: what each job requests (HTCondor's RequestCpus / RequestMemory /
      RequestDisk); the worker gets ``cores`` threads and ``memory`` as its memory limit.
    * death_timeout_s: a worker that cannot reach the scheduler for this long exits (and frees its slot).
    * scheduler_host: the address the scheduler listens on; it must be reachable from the execute
      nodes (None = dask-jobqueue's default, the submit host's own address; "127.0.0.1" for a
      one-machine pool such as tools/htcondor-pool).
    * log_directory: where HTCondor writes each worker's stdout / stderr / job log (None = nowhere).
      It must be writable by the user the jobs run as.
    * python: the interpreter the jobs start (default: this one; it must exist at the same path on
      the execute nodes, e.g. on a shared file system).
    * job_extra_directives: more submit-file lines, e.g. ``{"+JobFlavour": '"espresso"'}``.
    """

    cores: int = 1
    memory: str = "2GB"
    disk: str = "1GB"
    death_timeout_s: float = 60.0
    scheduler_host: str | None = None
    log_directory: str | None = None
    python: str = field(default_factory=lambda: sys.executable)
    job_extra_directives: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.cores < 1:
            raise ConfigError(f"HTCondor cores must be >= 1, got {self.cores}")
        if self.death_timeout_s <= 0:
            raise ConfigError(f"death_timeout_s must be > 0, got {self.death_timeout_s}")


def htcondor_cluster(settings: HTCondorSettings | None = None, *, workers: int = 0):
    """A ``dask_jobqueue.HTCondorCluster`` with hepinfer's environment in every job; ``workers`` > 0
    submits that many jobs at once (else call ``cluster.scale`` / ``adapt`` yourself)."""
    try:
        from dask_jobqueue import HTCondorCluster
    except ImportError as err:  # the optional extra
        raise ConfigError("HTCondor clusters need dask-jobqueue: pip install 'hepinfer[cluster]'") from err
    s = settings or HTCondorSettings()
    scheduler = {"dashboard": False, "dashboard_address": ":0"}  # no dashboard, no fixed port
    if s.scheduler_host:
        scheduler["host"] = s.scheduler_host
    if s.log_directory:
        os.makedirs(s.log_directory, exist_ok=True)
    prologue = [f"export {k}={shlex.quote(v)}" for k, v in worker_environment().items()]
    cluster = HTCondorCluster(
        cores=s.cores,
        processes=1,
        memory=s.memory,
        disk=s.disk,
        death_timeout=s.death_timeout_s,
        python=s.python,
        log_directory=s.log_directory,
        scheduler_options=scheduler,
        job_script_prologue=prologue,
        job_extra_directives={"getenv": "False", **s.job_extra_directives},
    )
    if workers:
        cluster.scale(workers)
    return cluster


@contextlib.contextmanager
def dask_client(
    cluster: str = "local",
    workers: int = 2,
    *,
    htcondor: HTCondorSettings | None = None,
    wait_timeout_s: float = 300.0,
):
    """A ``distributed.Client`` for ``cluster``: "local" (a LocalCluster of ``workers`` processes),
    "htcondor" (``workers`` HTCondor jobs; waits up to ``wait_timeout_s`` for all of them), or the
    address of a running scheduler ("tcp://host:8786"), which is attached to and left running."""
    from distributed import Client

    with contextlib.ExitStack() as stack:
        if cluster == "local":
            client = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
        elif cluster == "htcondor":
            hc = stack.enter_context(htcondor_cluster(htcondor, workers=workers))
            client = stack.enter_context(Client(hc))
            try:
                client.wait_for_workers(workers, timeout=wait_timeout_s)
            except TimeoutError as err:
                logs = (htcondor or HTCondorSettings()).log_directory
                raise HepinferError(
                    f"htcondor: {len(client.scheduler_info()['workers'])} of {workers} workers started within "
                    f"{wait_timeout_s:.0f} s (job logs: {logs or 'none, set log_directory'}; condor_q shows the jobs)"
                ) from err
        elif "://" in cluster:
            client = stack.enter_context(Client(cluster, timeout=f"{wait_timeout_s}s"))
        else:
            raise ConfigError(
                f"cluster must be one of {CLUSTERS} or a scheduler address (tcp://host:port), got {cluster!r}"
            )
        from hepinfer.analysis.worker_plugins import QuietSchemaWarnings

        client.register_plugin(QuietSchemaWarnings())
        client.run(warm_up)
        yield client
