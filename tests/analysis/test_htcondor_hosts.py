"""`hepinfer run --cluster htcondor` on a pool whose execute nodes are other hosts: the test bed's
network namespaces (tools/htcondor-pool up --hosts 2), none sharing this machine's loopback."""

import re

import pytest

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.clusters import HTCondorSettings
from hepinfer.analysis.job import run_job

pytestmark = [pytest.mark.htcondor, pytest.mark.hosts, pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(scope="module")
def pool_on_other_hosts(htcondor_pool_up):
    """The pool with two execute hosts: (the address they reach this machine at, their addresses)."""
    with htcondor_pool_up("--hosts", "2") as out:
        yield re.search(r"# scheduler_host: (\S+)", out)[1], re.findall(r"# execute host: \S+ (\S+)", out)


@pytest.fixture()
def condor_job(pool_on_other_hosts, job_settings, condor_inputs):
    """``condor_job(**fields)``: JobSettings of a run on two HTCondor workers, the generated files
    copied where the jobs read them; the scheduler listens on the gateway address."""
    gateway, _ = pool_on_other_hosts
    files, logs = condor_inputs
    condor = HTCondorSettings(death_timeout_s=30, scheduler_host=gateway, log_directory=str(logs))
    return lambda **fields: job_settings(
        inputs=tuple(files),
        models=("bdt",),
        config=InferenceConfig(mode="remote"),
        embedded_server=True,  # no URL: the run's embedded server
        executor="dask",
        cluster="htcondor",
        workers=2,
        chunksize=50,
        htcondor=condor,
        **fields,
    )


def test_remote_on_execute_nodes_elsewhere_scores_on_the_server(pool_on_other_hosts, condor_job, shared_dir):
    gateway, hosts = pool_on_other_hosts
    s = run_job(condor_job(check_local=True)).summary
    assert s["server"] == {"host": gateway, "token": True, "tls": False, "unreachable": {}}
    assert s["events"] == 300 and s["mode_used"] == {"bdt": "remote"}
    assert s["local_check"]["passed"] and s["local_check"]["identical"]
    # the workers were HTCondor jobs on the two other hosts
    started = {
        m
        for p in (shared_dir / "logs").glob("worker-*.err")
        for m in re.findall(r"Start worker at:\s+tcp://([\d.]+):", p.read_text())
    }
    assert started == set(hosts)


def test_a_loopback_server_stops_the_run_before_the_first_chunk(pool_on_other_hosts, condor_job):
    _, hosts = pool_on_other_hosts
    with pytest.raises(hepinfer.ServerUnavailable) as err:
        run_job(condor_job(server_host="127.0.0.1"))
    for address in hosts:
        assert f"worker {address} cannot reach grpc://127.0.0.1:" in str(err.value)
