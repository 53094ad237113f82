"""Faults against the real server and real Dask workers: the server killed (-9) or restarted in the
middle of ``hepinfer run``, a Dask worker killed mid-run, and a model slower than the timeout.

Each test has its own embedded server (it gets killed) on free loopback ports, and is bounded in
time by the retry settings it gives (a few seconds of backoff) and by pytest's own timeout guard
below.
"""

import os
import signal
import threading
import time

import numpy as np
import pytest

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.job import run_job
from hepinfer.serving.server import serve

pytestmark = [pytest.mark.triton, pytest.mark.slow]
MODELS = ("particlenet", "bdt")
# short backoff for the kill tests: a dead server is given up on after ~0.3 s
QUICK = dict(retries=2, retry_initial_ms=50, retry_max_ms=200, retry_total_s=5, reprobe_interval_s=600, timeout_s=30)


@pytest.fixture(scope="module")
def dask_job(job_settings):
    """JobSettings of a Dask run (a local cluster of 2 workers, chunks of 25 events) of the generated
    files; keywords as for job_settings."""
    return lambda **kw: job_settings(**{"executor": "dask", "cluster": "local", "workers": 2, "chunksize": 25, **kw})


def _after_first_round(action, delay_s=0.3):
    """A progress callback that runs ``action`` in another thread ``delay_s`` after the first round
    of chunks is done, i.e. while the second round is being processed."""
    fired = threading.Event()
    threads = []

    def progress(p):
        if not fired.is_set():
            fired.set()
            t = threading.Timer(delay_s, action)
            t.start()
            threads.append(t)

    return progress, threads


@pytest.fixture(scope="module")
def local_reference(dask_job, artefacts):
    return run_job(dask_job(config=InferenceConfig(mode="local")))


def _same(a, b):
    assert a.summary["cutflow"] == b.summary["cutflow"]
    assert a.summary["histograms"] == b.summary["histograms"]


def test_server_killed_mid_run_auto_falls_back_and_completes(dask_job, artefacts, local_reference, tmp_path):
    server = serve(MODELS)
    progress, killers = _after_first_round(lambda: os.kill(server.pid, signal.SIGKILL))
    try:
        settings = dask_job(config=InferenceConfig(**QUICK, mode="auto", url=server.url))
        result = run_job(settings, output=tmp_path / "summary.json", progress=progress)
    finally:
        for t in killers:
            t.join()
        server.stop()
    assert killers, "the run ended before the server could be killed"
    s = result.summary
    _same(result, local_reference)  # every event scored exactly once, with the local numbers
    assert s["events"] == 300
    for m in MODELS:
        inf = s["inference"][m]
        assert inf["remote_jets"] + inf["local_jets"] == s["fatjets_selected"]
        assert inf["remote_jets"] > 0 and inf["local_jets"] > 0, inf  # started remote, finished local
        assert inf["fallback_calls"] >= 1 and inf["retried_calls"] >= 1, inf
        assert s["mode_used"][m].startswith("mixed")
    assert (tmp_path / "summary.json").exists()


def test_server_killed_mid_run_remote_fails_clearly_without_summary(dask_job, artefacts, tmp_path):
    server = serve(MODELS)
    progress, killers = _after_first_round(lambda: os.kill(server.pid, signal.SIGKILL))
    out = tmp_path / "summary.json"
    t0 = time.monotonic()
    try:
        settings = dask_job(config=InferenceConfig(**QUICK, mode="remote", url=server.url))
        with pytest.raises((hepinfer.ServerUnavailable, hepinfer.InferenceTimeout)) as info:
            run_job(settings, output=out, progress=progress)
    finally:
        for t in killers:
            t.join()
        server.stop()
    assert killers
    message = str(info.value)
    assert server.url.split("://")[1] in message and "attempts" in message and "model '" in message, message
    assert not out.exists() and not list(tmp_path.iterdir())  # no summary, not even a partial one
    assert time.monotonic() - t0 < 120


def test_server_restarted_mid_run_client_reconnects(dask_job, artefacts, local_reference):
    server = serve(MODELS)
    ports = dict(server.ports)
    replacement = {}

    def restart():
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait()
        time.sleep(1.0)  # the old server is really gone before the new one binds the same ports
        replacement["server"] = serve(
            MODELS, grpc_port=ports["grpc"], http_port=ports["http"], metrics_port=ports["metrics"]
        )

    progress, restarters = _after_first_round(restart, delay_s=0.2)
    patient = InferenceConfig(retries=12, retry_initial_ms=200, retry_max_ms=2000, retry_total_s=90, timeout_s=30)
    try:
        result = run_job(dask_job(config=patient.replace(mode="remote", url=server.url)), progress=progress)
    finally:
        for t in restarters:
            t.join()
        server.stop()
        if "server" in replacement:
            replacement["server"].stop()
    assert replacement, "the server was not restarted"
    s = result.summary
    _same(result, local_reference)
    for m in MODELS:
        inf = s["inference"][m]
        assert inf["remote_jets"] == s["fatjets_selected"] and inf["local_jets"] == 0 and inf["fallback_calls"] == 0
    assert sum(s["inference"][m]["retried_calls"] for m in MODELS) >= 1, s["inference"]


def test_dask_worker_killed_mid_run_the_run_completes(dask_job, server, local_reference):
    from distributed import Client

    from hepinfer.analysis.clusters import local_cluster

    with local_cluster(workers=2) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        progress, killers = _after_first_round(lambda: os.kill(pids[0], signal.SIGKILL), delay_s=0.2)
        settings = dask_job(config=InferenceConfig(mode="remote", url=server.url), cluster=cluster.scheduler_address)
        result = run_job(settings, progress=progress)
        for t in killers:
            t.join()
        assert killers
        assert pids[0] not in client.run(os.getpid).values()  # that worker process is really gone
    _same(result, local_reference)
    assert result.summary["events"] == 300


def test_model_slower_than_the_timeout_raises_in_bounded_time(server):
    from hepinfer.models.toy import toy_inputs

    x = toy_inputs("particlenet", 64, seed=5)  # about 0.8 s of server time: far beyond 50 ms
    cfg = InferenceConfig(
        mode="remote", url=server.url, timeout_s=0.05, retries=2, retry_initial_ms=50, retry_max_ms=100, retry_total_s=2
    )
    scorer = hepinfer.Scorer("particlenet", config=cfg)
    scorer.remote.metadata()  # metadata first, with the default deadline of its own calls
    t0 = time.monotonic()
    with pytest.raises(hepinfer.InferenceTimeout, match=r"within 0.05 s.*gave up after 3 attempts") as info:
        scorer(x)
    assert time.monotonic() - t0 < cfg.retry_total_s + 3 * cfg.timeout_s + 1.0
    assert server.url.split("://")[1] in str(info.value) and "'particlenet'" in str(info.value)
    assert scorer.stats["retries"] == 2 and scorer.stats["remote_calls"] == 0
    scorer.close()


def test_auto_returns_to_the_server_when_it_is_back(artefacts):
    """auto mode: the server dies -> the call falls back to local; a new server on the same ports ->
    after reprobe_interval_s the Scorer uses it again (counted as a return)."""
    from hepinfer.models.toy import toy_inputs

    x = toy_inputs("bdt", 16, seed=9)
    want = hepinfer.Scorer("bdt")(x)["output__0"]
    server = serve(["bdt"])
    ports = dict(server.ports)
    cfg = InferenceConfig(
        mode="auto",
        url=server.url,
        retries=1,
        retry_initial_ms=20,
        retry_max_ms=40,
        reprobe_interval_s=1.0,
        probe_timeout_s=1.0,
    )
    scorer = hepinfer.Scorer("bdt", config=cfg)
    again = None
    try:
        assert scorer.score(x)[1] == "remote"
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait()
        with pytest.warns(UserWarning, match="falling back to local"):
            out, report = scorer.score_report(x)
        assert report.where == "local" and report.fallback and report.attempts == 2
        assert np.array_equal(out["output__0"], want)
        assert scorer.score(x)[1] == "local"  # within reprobe_interval_s: not asked again
        again = serve(["bdt"], grpc_port=ports["grpc"], http_port=ports["http"], metrics_port=ports["metrics"])
        time.sleep(cfg.reprobe_interval_s)
        with pytest.warns(UserWarning, match="is back"):
            out, where = scorer.score(x)
        assert where == "remote" and np.abs(out["output__0"] - want).max() <= 1e-5
        assert scorer.stats["fallbacks"] == 1 and scorer.stats["returns"] == 1
    finally:
        scorer.close()
        server.stop()
        if again is not None:
            again.stop()
