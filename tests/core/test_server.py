"""Lifecycle of the embedded server: it stops without leftovers, explains its failures, and the
``hepinfer serve`` command behaves as a foreground service."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hepinfer
from hepinfer import ModelNotFound, Scorer, ServerError
from hepinfer.models.toy import toy_inputs
from hepinfer.serving.ports import port_is_free

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
            except ProcessLookupError:
                pass
    return members


def _wait_ports_free(ports, seconds=20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(port_is_free("127.0.0.1", p) for p in ports):
            return True
        time.sleep(0.25)
    return False


def test_stop_leaves_no_process_and_frees_ports(artefacts):
    server = hepinfer.serve(["bdt", "particlenet"])
    pgid = server.pid
    ports = list(server.ports.values())
    assert server.is_running() and len(_group_members(pgid)) >= 3  # server + one stub per model
    assert not any(port_is_free("127.0.0.1", p) for p in ports)
    # an open client connection must not hold the shutdown
    Scorer("bdt", mode="remote", url=server.http_url)(toy_inputs("bdt", 2))
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 15
    assert _group_members(pgid) == []
    assert _wait_ports_free(ports)
    assert not server.is_running()
    # the proof that the ports are free: a new server listens on exactly the same ones
    grpc_port, http_port, metrics_port = (server.ports[k] for k in ("grpc", "http", "metrics"))
    with hepinfer.serve(["bdt"], grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port) as again:
        assert again.url == server.url
        assert Scorer("bdt", mode="remote", url=again.url)(toy_inputs("bdt", 2))["output__0"].shape == (2, 2)


def test_startup_failure_names_the_log(tmp_path, artefacts):
    repo = tmp_path / "repo"
    (repo / "bdt" / "1").mkdir(parents=True)
    (repo / "bdt" / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 8\n')
    (repo / "bdt" / "1" / "model.py").write_text("raise RuntimeError('no weights here')\n")  # fails in the server
    with pytest.raises(ServerError) as info:
        hepinfer.serve(["bdt"], repository=repo, startup_timeout_s=60)
    message = str(info.value)
    assert "log:" in message
    log = Path(message.split("log: ", 1)[1].split()[0])
    assert log.exists() and "bdt" in log.read_text()


@pytest.fixture(scope="module")
def bdt_server(artefacts):
    with hepinfer.serve(["bdt"]) as srv:
        yield srv


def test_model_not_served_is_named(bdt_server):
    with pytest.raises(ModelNotFound, match="'particlenet'.*not ready"):
        Scorer("particlenet", mode="remote", url=bdt_server.url)(toy_inputs("particlenet", 2))


def test_auto_falls_back_when_the_server_goes_away(artefacts):
    x = toy_inputs("bdt", 50, seed=12)
    want = Scorer("bdt")(x)["output__0"]
    server = hepinfer.serve(["bdt"])
    scorer = Scorer("bdt", mode="auto", url=server.url, timeout_s=5)
    assert np.abs(scorer(x)["output__0"] - want).max() <= 1e-5
    assert scorer.mode_used == "remote"
    server.stop()
    with pytest.warns(UserWarning, match="falling back to local"):
        got = scorer(x)["output__0"]
    assert np.array_equal(got, want)
    assert scorer.mode_used == "local" and scorer.stats["fallbacks"] == 1
    remote = Scorer("bdt", mode="remote", url=server.url, timeout_s=5, session_timeout_s=1)
    with pytest.raises(hepinfer.ServerUnavailable, match=server.url.split("//")[1]):
        remote(x)


def test_cli_serve_runs_until_sigint(artefacts):
    import tritonclient.grpc as grpcclient

    proc = subprocess.Popen(
        [sys.executable, "-m", "hepinfer.cli", "serve", "--models", "bdt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url, lines = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("grpc://"):
                url = line.strip()
        assert url, "".join(lines)
        client = grpcclient.InferenceServerClient(url.split("://")[1])
        x = toy_inputs("bdt", 3)
        inp = grpcclient.InferInput("input__0", [3, 20], "FP32")
        inp.set_data_from_numpy(x["input__0"])
        got = client.infer("bdt", [inp]).as_numpy("output__0")
        assert np.abs(got - Scorer("bdt")(x)["output__0"]).max() <= 1e-5
        client.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "server stopped" in out
        assert _group_members(proc.pid) == []
        assert _wait_ports_free([int(url.rsplit(":", 1)[1])])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_server_does_not_outlive_the_process_that_started_it(artefacts, how):
    """The analysis process dies without atexit (SIGTERM's default action, or kill -9): the guard
    stops tritonserver and its stubs, and the ports are freed."""
    import subprocess
    import sys

    code = (
        "import sys, time, hepinfer; s = hepinfer.serve(['bdt']); "
        "print(s.pid, *s.ports.values(), flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        guard, *ports = map(int, parent.stdout.readline().split())
        members = _group_members(guard)
        assert len(members) >= 3  # guard, tritonserver, the bdt stub
        parent.send_signal(how)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_members(guard) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group_members(guard) == []
        assert _wait_ports_free(ports)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
