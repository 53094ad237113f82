"""Where a run's embedded server listens, its token and how it reaches the workers (hepinfer.analysis.job.access)."""

import pickle
from types import SimpleNamespace

import pytest

from hepinfer import ConfigError, InferenceConfig
from hepinfer.analysis.job.access import (
    ServerAccess,
    address_towards,
    scheduler_host_port,
    server_access,
    stop_if_unreachable,
)
from hepinfer.analysis.job.summary import where_scored_line
from hepinfer.errors import ServerUnavailable
from hepinfer.models import get_spec
from hepinfer.runtime.triton import TritonRuntime


def test_workers_on_this_host_get_a_loopback_server_without_token(job_settings_light):
    for executor, cluster in (("iterative", "local"), ("futures", "local"), ("dask", "local")):
        access = server_access(job_settings_light(executor=executor, cluster=cluster))
        assert access == ServerAccess("127.0.0.1") and access.token is None


def test_workers_elsewhere_get_the_address_towards_them_and_a_token(job_settings_light):
    access = server_access(job_settings_light(executor="dask", cluster="tcp://127.0.0.1:8786"))
    assert access.host == "127.0.0.1"  # the address this host uses towards the scheduler's host
    assert access.token and access.token_env.startswith("HEPINFER_RUN_TOKEN_")
    assert access.token not in repr(access) and access.as_dict() == {"host": "127.0.0.1", "token": True, "tls": False}
    other = server_access(job_settings_light(executor="dask", cluster="tcp://127.0.0.1:8786"))
    assert other.token != access.token and other.token_env != access.token_env  # one per run
    from hepinfer.analysis.clusters import HTCondorSettings

    one_machine_pool = HTCondorSettings(scheduler_host="127.0.0.1")
    condor = server_access(job_settings_light(cluster="htcondor", htcondor=one_machine_pool))
    assert condor.host == "127.0.0.1" and condor.token  # loopback, a token all the same
    exposed = server_access(job_settings_light(executor="futures", server_host="0.0.0.0"))
    assert exposed.host == "0.0.0.0" and exposed.token  # not loopback: a token, whatever the executor


def test_scheduler_addresses():
    assert scheduler_host_port("tcp://10.0.0.5:8786") == ("10.0.0.5", 8786)
    assert scheduler_host_port("tls://sched.example.org:9000") == ("sched.example.org", 9000)
    assert scheduler_host_port("tcp://[fd00::5]:8786") == ("fd00::5", 8786)
    assert scheduler_host_port("tcp://sched") == ("sched", 8786)
    assert address_towards("127.0.0.1", 8786) == "127.0.0.1"


def test_the_token_is_named_never_carried(monkeypatch):
    base = InferenceConfig(mode="remote", headers={"Authorization": "Bearer other", "x-site": "a"}, token_file=None)
    access = ServerAccess("10.0.0.1", token="s3cret-token", token_env="HEPINFER_RUN_TOKEN_AB12")
    config = access.config(base, "grpc://10.0.0.1:8001")
    assert config.url == "grpc://10.0.0.1:8001" and config.headers == {"x-site": "a"}
    assert config.token_env == "HEPINFER_RUN_TOKEN_AB12" and not config.token_discovery
    assert b"s3cret-token" not in pickle.dumps(config) and "s3cret-token" not in repr(config)
    monkeypatch.setenv("HEPINFER_RUN_TOKEN_AB12", "s3cret-token")
    monkeypatch.setenv("HEPINFER_TOKEN", "not-this-one")
    assert config.request_headers()["authorization"] == "Bearer s3cret-token"


def test_grpc_requests_carry_tritons_copy_of_the_token(monkeypatch):
    monkeypatch.setenv("HEPINFER_TOKEN", "abc")
    grpc = TritonRuntime(get_spec("bdt"), config=InferenceConfig(mode="remote", url="grpc://h:1"))
    http = TritonRuntime(get_spec("bdt"), config=InferenceConfig(mode="remote", url="http://h:1"))
    assert grpc.request_headers() == {"authorization": "Bearer abc", "triton-grpc-protocol-authorization": "Bearer abc"}
    assert http.request_headers() == {"authorization": "Bearer abc"}
    monkeypatch.delenv("HEPINFER_TOKEN")
    quiet = TritonRuntime(get_spec("bdt"), config=InferenceConfig(mode="remote", token_discovery=False))
    assert quiet.request_headers() is None


def test_the_server_checks_the_token_itself(shipped_artefacts):
    from hepinfer.serving.server import EmbeddedServer, ServerOptions

    with pytest.raises(ConfigError, match="token"):
        ServerOptions(models=("bdt",), token="has space")
    server = EmbeddedServer(ServerOptions(models=("bdt",), host="10.0.0.1", token="tok"))
    server.repository, server.ports = "repo", {"grpc": 1, "http": 2, "metrics": 3}
    command = server._command(SimpleNamespace(tritonserver="tritonserver", backend_dir="backends"))
    guard = "health,metadata,model-config,statistics,inference:authorization=Bearer tok"
    assert f"--grpc-restricted-protocol={guard}" in command and f"--http-restricted-api={guard}" in command
    assert "tok" not in repr(server.options) and server.client_headers() == {"authorization": "Bearer tok"}


def test_unreachable_workers_stop_a_remote_run_and_are_named_in_auto():
    unreachable = {"10.0.0.2": {"reason": "cannot reach grpc://127.0.0.1:1", "detail": "refused"}}
    stops = r"worker 10\.0\.0\.2 cannot reach grpc://127\.0\.0\.1:1: stopped before the first chunk"
    with pytest.raises(ServerUnavailable, match=stops):
        stop_if_unreachable(unreachable, InferenceConfig(mode="remote"))
    stop_if_unreachable(unreachable, InferenceConfig(mode="auto"))  # goes on
    inference = {"bdt": {"remote_jets": 0, "local_jets": 567}, "particlenet": {"remote_jets": 0, "local_jets": 0}}
    summary = {"mode_requested": "auto", "inference": inference, "server": {"unreachable": unreachable}}
    assert where_scored_line(summary) == "auto: 0 remote, 567 local: worker 10.0.0.2 cannot reach grpc://127.0.0.1:1"
    fell = {"bdt": {"remote_jets": 5, "local_jets": 7, "fallback_calls": 1}}
    assert where_scored_line({"mode_requested": "auto", "inference": fell, "server": None}) == (
        "auto: 5 remote, 7 local (1 calls fell back to local during the run)"
    )
    assert where_scored_line({**summary, "mode_requested": "remote"}) is None


def test_server_tls_files_go_together(job_settings_light, tmp_path):
    with pytest.raises(ConfigError, match="go together"):
        job_settings_light(server_tls_cert=str(tmp_path / "c.pem"))
    with pytest.raises(ConfigError, match="does not exist"):
        job_settings_light(server_tls_cert=str(tmp_path / "c.pem"), server_tls_key=str(tmp_path / "k.pem"))


@pytest.fixture()
def job_settings_light(tmp_path):
    """JobSettings of an empty file (nothing is read here)."""
    from hepinfer.analysis.job import JobSettings

    path = tmp_path / "x.root"
    path.write_bytes(b"")
    return lambda **fields: JobSettings(**{"inputs": (str(path),), "models": ("bdt",), **fields})
