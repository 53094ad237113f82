"""`hepinfer run` with Dask workers on other hosts: the test bed's network namespaces
(tools/testbed-hosts), joined to a scheduler on this machine, none sharing its loopback."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from distributed import WorkerPlugin

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.job import format_summary, run_job

pytestmark = [pytest.mark.hosts, pytest.mark.triton, pytest.mark.slow]
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def scheduler(other_hosts, tmp_path_factory):
    """A Dask scheduler on this machine, listening on the address the hosts reach it at."""
    folder = tmp_path_factory.mktemp("scheduler")
    info = folder / "scheduler.json"
    argv = [DASK, "scheduler", "--host", other_hosts.gateway, "--port", "0", "--no-dashboard"]
    with open(folder / "scheduler.log", "wb") as log:
        proc = subprocess.Popen([*map(str, argv), "--scheduler-file", str(info)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, (folder / "scheduler.log").read_text()
            time.sleep(0.2)
        yield json.loads(info.read_text())["address"]
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture()
def workers(other_hosts, scheduler, tmp_path_factory):
    """One Dask worker on each host of the test bed (started where none runs: a test may have lost
    one), all joined to ``scheduler``; yields the scheduler's address."""
    from distributed import Client

    for namespace in other_hosts.hosts:
        if not other_hosts.pids(namespace):
            folder = tmp_path_factory.mktemp(namespace)
            argv = [DASK, "worker", scheduler, "--nthreads", "1", "--no-dashboard", "--local-directory", folder]
            with open(folder / "worker.log", "wb") as log:
                other_hosts.popen(namespace, argv, stdout=log, stderr=log)
    want = set(other_hosts.hosts.values())
    with Client(scheduler, timeout="60s") as client:
        deadline = time.monotonic() + 90
        while {w.split("://")[1].rsplit(":", 1)[0] for w in client.scheduler_info()["workers"]} != want:
            assert time.monotonic() < deadline, f"workers {list(client.scheduler_info()['workers'])}, want {want}"
            time.sleep(0.2)
    return scheduler


def test_remote_scores_every_jet_on_the_server_identical_to_local(other_hosts, workers, job_settings, tmp_path):
    """No --url: the embedded server listens where the workers reach it, with a token, and every jet
    is scored there, identical to local inference."""
    settings = job_settings(
        config=InferenceConfig(mode="remote"),
        embedded_server=True,
        executor="dask",
        cluster=workers,
        chunksize=50,
        check_local=True,
    )
    t0 = time.perf_counter()
    s = run_job(settings, output=tmp_path / "summary.json").summary
    print(f"remote run with --check-local on 2 other hosts: {time.perf_counter() - t0:.1f} s")
    assert s["events"] == 300 and s["embedded_server"]
    assert s["server"] == {"host": other_hosts.gateway, "token": True, "tls": False, "unreachable": {}}
    assert s["url"].startswith(f"grpc://{other_hosts.gateway}:")
    assert s["mode_used"] == {m: "remote" for m in settings.models}
    for m in settings.models:
        assert s["inference"][m]["remote_jets"] == s["fatjets_scored"][m] > 0 and s["inference"][m]["local_jets"] == 0
    check = s["local_check"]
    assert check["passed"] and check["identical"], check


def test_server_on_loopback_stops_before_the_first_chunk(other_hosts, workers, job_settings, tmp_path):
    rounds = []
    settings = job_settings(
        models=("bdt",),
        config=InferenceConfig(mode="remote"),
        embedded_server=True,
        executor="dask",
        cluster=workers,
        chunksize=50,
        server_host="127.0.0.1",
    )
    with pytest.raises(hepinfer.ServerUnavailable) as err:
        run_job(settings, output=tmp_path / "summary.json", progress=rounds.append)
    message = str(err.value)
    assert "grpc://127.0.0.1:" in message and "before the first chunk" in message
    for address in other_hosts.hosts.values():
        assert f"worker {address} cannot reach grpc://127.0.0.1:" in message
    assert not rounds and not (tmp_path / "summary.json").exists()


def test_auto_with_an_unreachable_server_says_why(other_hosts, workers, job_settings):
    settings = job_settings(
        models=("bdt",),
        config=InferenceConfig(mode="auto"),
        embedded_server=True,
        executor="dask",
        cluster=workers,
        chunksize=50,
        server_host="127.0.0.1",
    )
    result = run_job(settings)
    s = result.summary
    assert s["mode_used"] == {"bdt": "local"} and s["inference"]["bdt"]["remote_jets"] == 0
    assert set(s["server"]["unreachable"]) == set(other_hosts.hosts.values())
    local = s["inference"]["bdt"]["local_jets"]
    first = min(other_hosts.hosts.values())
    line = f"auto: 0 remote, {local} local: worker {first} cannot reach {s['url']}"
    assert line in format_summary(s) and line in result._repr_html_()


class HoldOnce(WorkerPlugin):
    """A worker plugin for the worker on ``host``: once ``after`` of its tasks are done, the next one
    it starts writes ``marker`` and holds the worker there (for the test to kill its host while the
    task is in its hands).  Pickled by value: the workers cannot import this module."""

    name = "hepinfer-test-hold-once"

    def __init__(self, host: str, marker: str, after: int = 3):
        self.host, self.marker, self.after = host, marker, after

    def setup(self, worker):
        self.here, self.done = f"//{self.host}:" in worker.address, 0

    def transition(self, key, start, finish, **kwargs):
        if not self.here:
            return
        if finish == "memory":
            self.done += 1
        elif finish == "executing" and self.done >= self.after and not os.path.exists(self.marker):
            Path(self.marker + ".partial").write_text(str(key))
            os.replace(self.marker + ".partial", self.marker)
            time.sleep(60)  # the host is killed meanwhile


def test_a_lost_host_loses_no_chunk(other_hosts, workers, job_settings, tmp_path):
    """Every process of one host killed while a task of the run is in its hands: Dask gives its work to
    the other host's worker and the cut flow counts every event of the files."""
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    lost, host = next(iter(other_hosts.hosts.items()))
    marker, done, killed = tmp_path / "holding", threading.Event(), {}

    def kill_when_held():
        while not done.is_set():
            if marker.exists():
                killed.update(key=marker.read_text(), pids=other_hosts.kill(lost))
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_when_held, daemon=True)
    settings = job_settings(
        models=("bdt",),
        config=InferenceConfig(mode="remote"),
        embedded_server=True,
        executor="dask",
        cluster=workers,
        chunksize=10,
    )
    with Client(workers, timeout="30s") as client:
        client.register_plugin(HoldOnce(host, str(marker)), name=HoldOnce.name)
        watcher.start()
        try:
            s = run_job(settings).summary  # run_job checks the events processed against the files'
        finally:
            done.set()
            watcher.join(30)
            client.unregister_worker_plugin(HoldOnce.name)
    assert killed.get("pids") and killed.get("key"), "the host was not killed while it held a task"
    print(f"host {host} killed while it held {killed['key']}")
    assert not other_hosts.pids(lost)
    assert s["cutflow"]["events"] == s["events"] == 300
    assert s["inference"]["bdt"]["remote_jets"] == s["fatjets_scored"]["bdt"] > 0


def test_tls_on_request(other_hosts, workers, job_settings, self_signed, tmp_path):
    cert, key = self_signed(tmp_path, addresses=(other_hosts.gateway,))
    settings = job_settings(
        models=("bdt",),
        config=InferenceConfig(mode="remote"),
        embedded_server=True,
        executor="dask",
        cluster=workers,
        chunksize=100,
        server_tls_cert=str(cert),
        server_tls_key=str(key),
    )
    s = run_job(settings).summary
    assert s["url"].startswith(f"grpcs://{other_hosts.gateway}:") and s["server"]["tls"] and s["server"]["token"]
    assert s["mode_used"] == {"bdt": "remote"}


PROBE = """
import sys
import tritonclient.grpc as grpc
import hepinfer
from hepinfer.models.toy import toy_inputs

address = sys.argv[1]
try:
    grpc.InferenceServerClient(address).is_model_ready("bdt")
    print("plain client: answered")
except Exception as err:
    print("plain client: refused:", err)
scores = hepinfer.Scorer("bdt", mode="remote", url="grpc://" + address)(toy_inputs("bdt", 5, seed=1))["output__0"]
print("hepinfer with the token: scored", scores.shape)
"""


def test_a_server_with_a_token_refuses_clients_without_it(other_hosts, shipped_artefacts):
    """From another host: plain tritonclient without the token is refused; hepinfer's client, which finds
    the token in $HEPINFER_TOKEN, scores."""
    namespace = next(iter(other_hosts.hosts))
    with hepinfer.serve(["bdt"], host=other_hosts.gateway, token="t0ken-for-this-test") as server:
        address = server.url.split("://")[1]
        env = {**os.environ, "HEPINFER_TOKEN": "t0ken-for-this-test"}
        probe = other_hosts.popen(
            namespace, [sys.executable, "-c", PROBE, address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        out, err = probe.communicate(timeout=120)
    out = out.decode()
    assert probe.returncode == 0, err.decode()[-2000:]
    assert "plain client: refused" in out and "restricted" in out
    assert "hepinfer with the token: scored (5, 2)" in out
