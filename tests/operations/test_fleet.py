"""The serving fleet against the real binaries: tritonserver replicas behind a real HAProxy, a real
Prometheus scraping them, the autoscaler reading it.  Nothing is mocked.

One fleet of the BDT (cheap to serve) runs for the module, with an autoscaler made fast for a test
(decisions every second, windows of a few seconds, thresholds low enough for two client threads to
matter); each test pauses or unpauses its scaling and sets its settings.  Load comes from client
threads calling a Scorer in remote mode (hepinfer's client: retries with backoff on UNAVAILABLE);
"no failed call" counts every call that raised.  Skipped when haproxy or prometheus is not installed
(``./run.sh`` installs both as root with apt).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.errors import ConfigError, HepinferError, ServerError, ServerUnavailable
from hepinfer.models import get_spec


def _missing() -> list[str]:
    from hepinfer.operations.fleet.processes import missing_binaries

    return missing_binaries()


MISSING = _missing()
pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING), reason=f"{' and '.join(MISSING)} not installed (apt-get install haproxy prometheus)"
    ),
]
MODEL = "bdt"


def _settings(**changes):
    from hepinfer.operations.fleet import AutoscalerSettings

    fast = dict(
        metric="in_flight",
        threshold=1.0,
        window_s=3.0,
        poll_s=1.0,
        tick_s=0.5,
        up_cooldown_s=2.0,
        down_cooldown_s=3.0,
        admission_ratio=None,
    )
    return AutoscalerSettings(**{**fast, **changes})


@pytest.fixture(scope="module")
def fleet(artefacts):
    from hepinfer.operations.fleet import Fleet

    with Fleet([MODEL], replicas=2, min_replicas=1, max_replicas=3, autoscaler=_settings(), drain_timeout_s=20) as f:
        f.autoscaler.paused = True  # each test says whether it scales
        yield f


@pytest.fixture(scope="module")
def inputs():
    from hepinfer.models.toy import toy_inputs

    return toy_inputs(MODEL, 2000, seed=3)


class Load:
    """``threads`` clients scoring ``inputs`` in a loop through the fleet until ``stop()``."""

    def __init__(self, url, inputs, threads=4, pause_s=0.0, **config):
        self.pause_s = pause_s
        self.scorer = hepinfer.Scorer(MODEL, mode="remote", url=url, **config)
        self.inputs, self.calls, self.failures = inputs, 0, []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        while not self._halt.is_set():
            try:
                self.scorer(self.inputs)
                with self._lock:
                    self.calls += 1
                self._halt.wait(self.pause_s)
            except HepinferError as err:
                with self._lock:
                    self.failures.append(err)
                time.sleep(0.05)

    def stop(self):
        self._halt.set()
        for t in self._threads:
            t.join(timeout=60)
        return self


def _wait(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _actions(fleet, since, action=None):
    return [d for d in list(fleet.decisions) if d.time >= since and (action is None or d.action == action)]


def _configure(fleet, paused, **changes):
    fleet.autoscaler.settings = _settings(**changes)
    fleet.autoscaler.paused = paused


def test_two_replicas_serve_the_local_scores(fleet, inputs):
    from hepinfer.runtime.local import LocalRuntime
    from hepinfer.runtime.triton import TritonRuntime

    local = LocalRuntime(get_spec(MODEL)).infer(inputs)
    with TritonRuntime(get_spec(MODEL), url=fleet.url) as remote:
        for _ in range(10):
            out = remote.infer(inputs)
            for name, expected in local.items():
                np.testing.assert_array_equal(out[name], expected)
    served = {name: int(row["stot"]) for name, row in fleet.haproxy.stats().items() if name.startswith("r")}
    assert len(served) == 2 and all(n > 0 for n in served.values()), served  # both replicas had requests
    # Prometheus found both replicas through the file_sd targets file
    _wait(lambda: len(fleet.prometheus.query('up{job="triton"} == 1')) == 2, 15, "Prometheus scraping both replicas")
    from hepinfer.operations.fleet import read_status

    doc = read_status(url=fleet.status_url)
    assert doc["url"] == fleet.url and [r["state"] for r in doc["replicas"]] == ["serving", "serving"]


def test_hepinfer_run_through_the_fleet_equals_local(fleet, job_settings):
    """The main job against the fleet's one URL (requests spread over both replicas), checked against
    local inference: every jet's score exactly the local one, histograms and cut flow identical."""
    from hepinfer.analysis.job import run_job

    settings = job_settings(
        models=(MODEL,), config=InferenceConfig(mode="remote", url=fleet.url), executor="iterative", check_local=True
    )
    summary = run_job(settings).summary
    check = summary["local_check"]
    assert check["passed"] and check["identical"], check
    assert check["models"][MODEL]["jets"] > 0 and check["models"][MODEL]["max_abs_diff"] == 0.0
    assert summary["serving"][MODEL]["engine"] == "xgboost" and not summary["serving"][MODEL]["reduced"]


def test_killed_replica_is_replaced_and_no_call_fails(fleet, inputs):
    _configure(fleet, paused=True)
    since = time.time()
    load = Load(fleet.url, inputs, threads=4)
    time.sleep(1.5)
    victim = fleet.serving()[0]
    os.killpg(victim.server.pid, signal.SIGKILL)  # the replica's guard and tritonserver, as kill -9 -PGID
    _wait(lambda: _actions(fleet, since, "replace"), 10, "the supervisor noticing the dead replica")
    _wait(lambda: fleet.serving_count() == 2 and victim.name not in fleet.replicas, 30, "a replacement in rotation")
    time.sleep(1.5)  # load on the replacement too
    load.stop()
    assert load.failures == [], load.failures[:3]
    assert load.calls > 20
    (replace,) = _actions(fleet, since, "replace")
    assert victim.name in replace.reason and "-9" in replace.detail
    print(f"kill -9 of {victim.name}: {load.calls} calls, 0 failed, {load.scorer.stats['retries']} client retries")


def test_scale_down_under_load_drains_without_failures(fleet, inputs):
    _configure(fleet, paused=True)
    load = Load(fleet.url, inputs, threads=4)
    assert fleet.scale_to(3) == 3
    time.sleep(1.0)
    counts = []
    for n in (2, 1):
        fleet.scale_to(n)
        counts.append(fleet.serving_count())
        time.sleep(0.5)
    load.stop()
    assert counts == [2, 1]
    assert load.failures == [], load.failures[:3]
    fleet.scale_to(2)


def test_autoscaler_follows_the_load(fleet, inputs):
    _configure(fleet, paused=False, threshold=0.5)
    since = time.time()
    heavy = Load(fleet.url, inputs, threads=6)
    _wait(lambda: fleet.serving_count() == 3, 40, "a scale-up to 3 replicas under load")
    heavy.stop()
    calm = time.time()
    light = Load(fleet.url, inputs, threads=1, pause_s=0.3)  # scale-down while requests still flow
    _wait(lambda: fleet.serving_count() == 1, 60, "a scale-down to 1 replica with little load")
    light.stop()
    sizes = [(round(d.time - since, 1), d.action, d.replicas, d.target) for d in _actions(fleet, since)]
    print("decisions (s, action, replicas, target):", sizes, f"calls {heavy.calls} + {light.calls}")
    assert heavy.failures == [] and light.failures == [], (heavy.failures + light.failures)[:3]
    ups = [d for d in _actions(fleet, since, "up") if d.time < calm]
    assert ups and max(d.target for d in ups) == 3 and all(d.value > 0 for d in ups)
    downs = [d for d in _actions(fleet, calm, "down")]  # the light load: down to the minimum
    assert downs and downs[-1].target == 1 and all(d.value < 0.5 for d in downs)
    _wait(lambda: "hepinfer_fleet_replicas 1.0" in fleet.metrics.text().decode(), 5, "the replicas gauge at 1")
    assert 'hepinfer_fleet_decisions_total{action="up"}' in fleet.metrics.text().decode()


REFUSAL = "admits no new session now"  # the fleet's sentence while saturated


def _repository_index(url):
    """A new session's first call (SuperSONIC's rule): RepositoryIndex, by tritonclient on a
    connection of its own; the answer's gRPC (status, message).  Past the front a replica answers,
    and hepinfer's replicas keep the model-repository protocol to their launcher's admin token: a
    client gets Triton's own UNAVAILABLE "This protocol is restricted" there, never the fleet's
    sentence."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url.removeprefix("grpc://"))
    try:
        client.get_model_repository_index()
        return "StatusCode.OK", ""
    except InferenceServerException as err:
        return err.status(), err.message()
    finally:
        client.close()


def _intercepted(fleet) -> int:
    """Requests the front answered itself (the refusals)."""
    return int(fleet.haproxy.stats("grpc")["FRONTEND"]["intercepted"])


def _refused_while_saturated(fleet, timeout_s):
    """A RepositoryIndex refused by the front while the autoscaler holds the guard up (the load may
    dip below the ceiling between two ticks: then the call passes, and the next one is tried)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if fleet.saturated:
            status, message = _repository_index(fleet.url)
            if REFUSAL in message:
                return status, message
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: a new session refused while saturated")


def test_saturated_front_refuses_new_sessions_only(fleet, inputs):
    """SuperSONIC's session rule at the real HAProxy: with the saturation flag raised (through the
    runtime API, as the autoscaler raises it; its own guard is off here, so the flag stays), a
    RepositoryIndex call gets UNAVAILABLE with the fleet's sentence, and inferences pass: on a
    connection opened before, and on a new one that starts with an inference.  hepinfer's Scorer
    opens its session (RepositoryIndex) before its first inference: a new one is refused."""
    _configure(fleet, paused=True)  # admission_ratio=None: the autoscaler leaves the flag alone
    expected = hepinfer.Scorer(MODEL, mode="local")(inputs)["output__0"]
    session = hepinfer.Scorer(MODEL, mode="remote", url=fleet.url, retries=0)
    session(inputs)  # the session's connection is open
    before = _intercepted(fleet)
    status, message = _repository_index(fleet.url)
    assert REFUSAL not in message and _intercepted(fleet) == before, (status, message)  # passed the front
    fleet.haproxy.set_saturated(True)
    try:
        status, message = _repository_index(fleet.url)
        assert status == "StatusCode.UNAVAILABLE" and REFUSAL in message, (status, message)
        assert _intercepted(fleet) == before + 1
        for _ in range(3):
            np.testing.assert_array_equal(session(inputs)["output__0"], expected)
        from hepinfer.runtime.triton import TritonRuntime

        with TritonRuntime(get_spec(MODEL), url=fleet.url) as fresh:  # a new connection that starts with an inference
            np.testing.assert_array_equal(fresh.infer(inputs)["output__0"], expected)
        assert _intercepted(fleet) == before + 1  # no inference, metadata or readiness call was refused
        newcomer = hepinfer.Scorer(MODEL, mode="remote", url=fleet.url, retries=0)  # opens its session first
        with pytest.raises(ServerUnavailable, match=REFUSAL):
            newcomer(inputs)
        assert _intercepted(fleet) == before + 2
    finally:
        fleet.haproxy.set_saturated(False)
    assert REFUSAL not in _repository_index(fleet.url)[1]


def test_saturation_guard_follows_the_load_and_never_refuses_inferences(fleet, inputs):
    _configure(fleet, paused=True, admission_ratio=0.25)  # the guard at 0.25 requests in flight per replica
    since = time.time()
    load = Load(fleet.url, inputs, threads=4, retries=0)
    _wait(lambda: fleet.saturated, 20, "the guard raised under load")
    status, message = _refused_while_saturated(fleet, 20)
    assert status == "StatusCode.UNAVAILABLE" and message.startswith("hepinfer fleet saturated"), message
    load.stop()
    assert load.failures == [], load.failures[:3]  # no inference refused (retries=0: one refusal would show)
    _wait(lambda: not fleet.saturated, 20, "the guard lowered once the load stopped")
    assert REFUSAL not in _repository_index(fleet.url)[1]
    assert [d.action for d in _actions(fleet, since) if d.action in ("saturated", "admitting")][:2] == [
        "saturated",
        "admitting",
    ]
    print(f"saturation guard: {load.calls} inferences, none refused; {_intercepted(fleet)} refusals at the front")
    _configure(fleet, paused=True)


def test_prometheus_down_holds_the_size_and_says_why(fleet, inputs):
    from hepinfer.operations.fleet import read_status

    _configure(fleet, paused=False)
    since = time.time()
    size = fleet.serving_count()
    os.killpg(fleet.prometheus.process.pid, signal.SIGKILL)
    _wait(lambda: _actions(fleet, since, "hold"), 10, "a hold decision")
    hold = _actions(fleet, since, "hold")[0]
    assert hold.text.startswith("hold: prometheus unreachable"), hold.text
    assert not _actions(fleet, since, "up") and not _actions(fleet, since, "down")
    assert fleet.serving_count() == size
    assert read_status(run_dir=fleet.run_dir)["autoscaler"]["prometheus_up"] is False
    hepinfer.Scorer(MODEL, mode="remote", url=fleet.url)(inputs)  # serving goes on without Prometheus
    _wait(lambda: _actions(fleet, since, "restart"), 20, "the supervisor restarting Prometheus")
    assert "prometheus" in _actions(fleet, since, "restart")[0].reason
    _configure(fleet, paused=True)


def test_haproxy_killed_is_restarted_on_the_same_port(fleet, inputs):
    _configure(fleet, paused=True)
    since, url = time.time(), fleet.url
    os.killpg(fleet.haproxy.process.pid, signal.SIGKILL)
    _wait(lambda: _actions(fleet, since, "restart"), 20, "the supervisor restarting HAProxy")
    assert "haproxy" in _actions(fleet, since, "restart")[0].reason and fleet.url == url
    remote, local = (hepinfer.Scorer(MODEL, mode=m, url=url) for m in ("remote", "local"))
    np.testing.assert_array_equal(remote(inputs)["output__0"], local(inputs)["output__0"])
    assert set(fleet.haproxy.stats()) - {"BACKEND"} == {r.name for r in fleet.serving()}


FLEET_CHILD = """
import sys, time
from hepinfer.operations.fleet import AutoscalerSettings, Fleet
fleet = Fleet(["bdt"], replicas=1, autoscaler=AutoscalerSettings(scale=False)).start()
groups = [fleet.haproxy.process.pid, fleet.prometheus.process.pid] + [r.server.pid for r in fleet.serving()]
print(*groups, flush=True)
time.sleep(600)
"""


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_nothing_outlives_a_killed_fleet_process(artefacts):
    child = subprocess.Popen([sys.executable, "-c", FLEET_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        groups = [int(g) for g in child.stdout.readline().split()]
        assert len(groups) == 3 and all(_group_alive(g) for g in groups)
        child.kill()  # kill -9: no atexit, no cleanup
        child.wait()
        _wait(lambda: not any(_group_alive(g) for g in groups), 30, "HAProxy, Prometheus and the replica gone")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()


def test_front_door_token_rate_limit_and_tls(artefacts, inputs, self_signed, tmp_path, monkeypatch):
    from hepinfer.operations.fleet import AdmissionOptions, Fleet

    cert, key = self_signed(tmp_path)
    admission = AdmissionOptions(token="s3cret-token", rate_limit=3)
    settings = _settings(scale=False)
    with Fleet([MODEL], replicas=1, autoscaler=settings, admission=admission, tls_cert=cert, tls_key=key) as fleet:
        assert fleet.url.startswith("grpcs://")
        tls = dict(root_certificates=str(cert), retries=0)
        monkeypatch.delenv("HEPINFER_TOKEN", raising=False)
        with pytest.raises(ServerError, match="lacks a header"):
            hepinfer.Scorer(MODEL, mode="remote", url=fleet.url, **tls)(inputs)
        monkeypatch.setenv("HEPINFER_TOKEN", "s3cret-token")
        scorer = hepinfer.Scorer(MODEL, mode="remote", url=fleet.url, **tls)
        out = scorer(inputs)
        np.testing.assert_array_equal(out["output__0"], hepinfer.Scorer(MODEL, mode="local")(inputs)["output__0"])
        with pytest.raises(ServerUnavailable, match="too many requests per second"):
            for _ in range(40):  # 3 requests/s over 10 s: the 31st request in a burst is refused
                scorer(inputs)
        assert "s3cret-token" not in (fleet.run_dir / "haproxy.cfg").read_text()


def test_cli_fleet_up_and_status(artefacts):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "hepinfer.cli", "fleet", "up", "--models", MODEL, "--replicas", "1", "--no-autoscale"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        while not (lines and lines[-1].startswith("grpc://")):
            line = proc.stdout.readline()
            assert line, "hepinfer fleet up exited:\n" + "".join(lines)
            lines.append(line.strip())
        status_url = next(line.split()[1] for line in lines if line.startswith("status"))
        shown = subprocess.run(
            [sys.executable, "-m", "hepinfer.cli", "fleet", "status", "--url", status_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert lines[-1] in shown.stdout and "r1" in shown.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "fleet stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_settings_are_checked_and_missing_binaries_say_how_to_install(monkeypatch):
    from hepinfer.operations.fleet import AutoscalerSettings, FleetOptions
    from hepinfer.operations.fleet.autoscaler import decide
    from hepinfer.operations.fleet.processes import find_binary

    with pytest.raises(ConfigError, match="min_replicas <= replicas"):
        FleetOptions.build(MODEL, replicas=5, max_replicas=4)
    with pytest.raises(ConfigError, match="free ports"):
        FleetOptions.build(MODEL, grpc_port=8001)
    with pytest.raises(ConfigError, match=r"unknown fleet setting\(s\) \['specs'\]"):  # resolved by the replicas
        FleetOptions.build(MODEL, specs=())
    s = AutoscalerSettings()
    assert (s.threshold, s.window_s, s.ceiling, s.poll_s) == (2.0, 60.0, 3.0, 30.0)  # SuperSONIC's
    assert AutoscalerSettings(metric="queue_time").threshold == 100.0
    assert decide(s, 7.0, 2, (1, 4), 999, 999)[:2] == ("up", 3)
    assert decide(s, 7.0, 2, (1, 4), 10, 999)[2] == "cooling down after a scale-up"
    assert decide(s, 0.5, 3, (1, 4), 999, 999)[:2] == ("down", 2)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("hepinfer.operations.fleet.processes._SBIN", ())
    with pytest.raises(ServerError, match="apt-get install haproxy"):
        find_binary("haproxy")
    monkeypatch.setenv("HEPINFER_PROMETHEUS", "/nonexistent/prometheus")
    with pytest.raises(ConfigError, match="HEPINFER_PROMETHEUS"):
        find_binary("prometheus")


def test_settings_replace_keeps_defaults_per_metric():
    from hepinfer.operations.fleet import AutoscalerSettings

    s = dataclasses.replace(AutoscalerSettings(metric="queue_time"), poll_s=5.0)
    assert (s.threshold, s.window_s, s.ceiling) == (100.0, 15.0, 150.0)
