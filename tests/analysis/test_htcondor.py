"""Dask workers as jobs of a real HTCondor pool (tools/htcondor-pool), scoring on the embedded server."""

from dataclasses import replace

import pytest

from hepinfer import InferenceConfig
from hepinfer.analysis.clusters import HTCondorSettings
from hepinfer.analysis.job import run_job, same_result

pytestmark = [pytest.mark.htcondor, pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(scope="module")
def htcondor_pool(htcondor_pool_up):
    """The pool, brought up by the project's script for the module (its execute node is this machine)."""
    with htcondor_pool_up():
        yield


def test_processor_on_htcondor_workers_matches_local(htcondor_pool, server, job_settings, condor_inputs):
    files, logs = condor_inputs
    condor = HTCondorSettings(
        cores=1, memory="2GB", disk="1GB", death_timeout_s=30, scheduler_host="127.0.0.1", log_directory=str(logs)
    )
    settings = job_settings(
        inputs=tuple(files),
        config=InferenceConfig(mode="remote", url=server.url),
        executor="dask",
        cluster="htcondor",
        workers=2,
        chunksize=50,
        htcondor=condor,
    )
    remote = run_job(settings)
    local = run_job(replace(settings, config=settings.config.replace(mode="local"), executor="iterative"))
    assert same_result(
        {"cutflow": remote.summary["cutflow"], "hists": remote.hists},
        {"cutflow": local.summary["cutflow"], "hists": local.hists},
    )
    assert remote.summary["events"] == 300 and remote.summary["cluster"] == "htcondor"
    assert remote.summary["mode_used"] == {"particlenet": "remote", "bdt": "remote"}
    # the workers really were HTCondor jobs: HTCondor wrote their logs, and they joined this scheduler
    worker_logs = sorted(logs.glob("worker-*.err"))
    assert len(worker_logs) >= 2
    assert all("Registered to" in p.read_text() for p in worker_logs[:2])
