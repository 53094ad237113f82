"""Integration tests against the real tritonserver binary (one embedded server per test session)."""

import pickle
import threading
import time

import numpy as np
import pytest

import hepinfer
from hepinfer import InferenceConfig, InputMismatch, ModelNotFound, Scorer, ServerUnavailable
from hepinfer.models import SPECS, get_spec
from hepinfer.models.toy import toy_inputs
from hepinfer.runtime.triton import TritonRuntime

# the tests on the server are marked triton; the two without one are quick


def _stats(server, model, rows: int = 0):
    """(rows, requests) the server counted for ``model``, once it counts at least ``rows`` rows: the
    python backend reports a request just after answering it, so the count may lag the answer."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.url.split("://")[1])

    def read():
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        return int(stats.get("inference_count", 0)), int(stats["inference_stats"]["success"].get("count", 0))

    for _ in range(200):
        if read()[0] >= rows:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # what a request still on its way (this test's or an earlier one's) would add shows
    return read()


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("model", list(SPECS))
def test_local_and_remote_agree(server, model, protocol):
    x = toy_inputs(model, 100 if model != "resnet50" else 40, seed=11)
    url = server.url if protocol == "grpc" else server.http_url
    local = Scorer(model, mode="local")(x)
    remote = Scorer(model, mode="remote", url=url)(x)
    for name in local:
        assert remote[name].shape == local[name].shape
        assert np.abs(remote[name] - local[name]).max() <= 1e-5


@pytest.mark.triton
def test_plain_tritonclient_can_infer(server):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.url.split("://")[1])
    assert client.is_server_ready()
    x = toy_inputs("particlenet", 5, seed=2)
    inputs = []
    for name, arr in x.items():
        inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    got = client.infer("particlenet", inputs).as_numpy("softmax")
    assert got.shape == (5, 2)
    assert np.abs(got - Scorer("particlenet")(x)["softmax"]).max() <= 1e-5


@pytest.mark.triton
def test_coffea_style_url(server):
    port = server.url.rsplit(":", 1)[1]
    x = toy_inputs("bdt", 10, seed=3)
    out = Scorer("bdt", mode="remote", url=f"triton+grpc://127.0.0.1:{port}/bdt/1")(x)
    assert np.abs(out["output__0"] - Scorer("bdt")(x)["output__0"]).max() <= 1e-5


@pytest.mark.triton
def test_batches_split_at_max_batch_size_without_padding(server):
    n = 2 * SPECS["bdt"].max_batch_size + 17  # 4096 + 4096 + 17
    x = toy_inputs("bdt", n, seed=4)
    count0, requests0 = _stats(server, "bdt")
    out = Scorer("bdt", mode="remote", url=server.url)(x)
    count1, requests1 = _stats(server, "bdt", count0 + n)
    assert out["output__0"].shape == (n, 2)
    assert requests1 - requests0 == 3
    assert count1 - count0 == n  # every row sent exactly once: no padding, no repeats
    assert np.abs(out["output__0"] - Scorer("bdt")(x)["output__0"]).max() <= 1e-5


@pytest.mark.triton
def test_batches_split_at_request_size(server):
    x = toy_inputs("resnet50", 10, seed=5)  # 48 KiB per image
    cfg = InferenceConfig(mode="remote", url=server.url, max_request_bytes=3 * 49152)
    rows, before = _stats(server, "resnet50")
    out = Scorer("resnet50", config=cfg)(x)
    _, after = _stats(server, "resnet50", rows + 10)
    assert after - before == 4  # 4 equal pieces of at most 3 images: 3 + 3 + 2 + 2
    assert np.abs(out["softmax"] - Scorer("resnet50")(x)["softmax"]).max() <= 1e-5


@pytest.mark.triton
@pytest.mark.parametrize("in_flight", [1, 8])
def test_many_pieces_in_flight_come_back_in_order(server, in_flight):
    x = toy_inputs("bdt", 500, seed=6)  # 80 bytes a row: 12 rows per 1 KiB request, 42 requests
    cfg = InferenceConfig(mode="remote", url=server.url, max_request_bytes=1024, max_in_flight=in_flight)
    count0, before = _stats(server, "bdt")
    out = Scorer("bdt", config=cfg)(x)
    count1, after = _stats(server, "bdt", count0 + 500)
    assert after - before == 42 and count1 - count0 == 500
    assert np.array_equal(out["output__0"], Scorer("bdt")(x)["output__0"])


@pytest.mark.triton
def test_a_timeout_in_flight_is_an_inference_timeout(server):
    x = toy_inputs("particlenet", 12, seed=7)  # 7.2 kB a row: one row per request, 12 requests
    cfg = InferenceConfig(mode="remote", url=server.url, max_request_bytes=1024, max_in_flight=4, timeout_s=0.001)
    with pytest.raises(hepinfer.InferenceTimeout, match="within 0.001 s"):
        Scorer("particlenet", config=cfg)(x)


@pytest.mark.triton
def test_empty_batch_is_not_sent(server):
    _, before = _stats(server, "bdt")
    out = Scorer("bdt", mode="remote", url=server.url)({"input__0": np.zeros((0, 20), np.float32)})
    assert out["output__0"].shape == (0, 2)
    assert _stats(server, "bdt")[1] == before


def test_unreachable_server_is_named(free_port):
    port = free_port
    url = f"grpc://127.0.0.1:{port}"
    with pytest.raises(ServerUnavailable) as info:
        Scorer("bdt", mode="remote", url=url, timeout_s=5)(toy_inputs("bdt", 3))
    assert url in str(info.value) and "hepinfer serve" in str(info.value)
    # Dask pickles the whole cause/context chain to send a worker's error back: it must pickle
    err = info.value
    assert err.__context__ is None and "InferenceServerException" in str(err.__cause__)
    assert pickle.loads(pickle.dumps(err.__cause__)).args == err.__cause__.args
    with pytest.raises(ServerUnavailable):
        Scorer("bdt", mode="remote", url=f"http://127.0.0.1:{port}", session_timeout_s=1)(toy_inputs("bdt", 3))


def _own_address() -> str | None:
    """This machine's address on its network (not loopback), or None when it has none."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent by a UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_an_unreachable_shared_server_is_not_told_to_start_one(free_port):
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    url = f"grpc://{address}:{free_port}"  # another host's view: nothing listens there
    with pytest.raises(ServerUnavailable) as info:
        Scorer("bdt", mode="remote", url=url, timeout_s=5, retries=0)(toy_inputs("bdt", 3))
    text = str(info.value)
    assert address in text and "hepinfer serve" not in text and "firewall" in text


@pytest.mark.triton
def test_model_not_on_server(server):
    port = server.url.rsplit(":", 1)[1]
    rt = TritonRuntime(get_spec("bdt"), f"grpc://127.0.0.1:{port}", model_name="not_there")
    with pytest.raises(ModelNotFound, match="'not_there' .*not ready"):
        rt.infer(toy_inputs("bdt", 3))


@pytest.mark.triton
def test_server_metadata_mismatch_names_tensor(server):
    # The server's bdt model is asked to score with particlenet's spec view of the inputs: the
    # server metadata check must name the tensor before anything is sent.
    rt = TritonRuntime(get_spec("particlenet"), server.url, model_name="bdt")
    with pytest.raises(InputMismatch, match=r"model 'bdt' on .*expects input tensors \['input__0'\]"):
        rt.infer(toy_inputs("particlenet", 2))
    rt = TritonRuntime(get_spec("bdt"), server.url)
    x = toy_inputs("bdt", 2)
    with pytest.raises(InputMismatch, match=r"'input__0'.*\(N, 20\).*\(2, 19\)"):
        rt.infer({"input__0": x["input__0"][:, :19]})


@pytest.mark.triton
def test_clients_per_thread_and_never_pickled(server):
    rt = TritonRuntime(get_spec("bdt"), server.url)
    x = toy_inputs("bdt", 64, seed=8)
    want = Scorer("bdt")(x)["output__0"]
    clients, errors = set(), []

    def work():
        try:
            for _ in range(5):
                assert np.abs(rt.infer(x)["output__0"] - want).max() <= 1e-5
            clients.add(id(rt.client))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(clients) == 4
    state = rt.__getstate__()
    assert "_tls" not in state and "_meta" not in state
    clone = pickle.loads(pickle.dumps(rt))
    assert np.abs(clone.infer(x)["output__0"] - want).max() <= 1e-5


@pytest.mark.triton
def test_auto_uses_the_server_when_it_answers(server):
    scorer = Scorer("bdt", mode="auto", url=server.url)
    scorer(toy_inputs("bdt", 4))
    assert scorer.mode_used == "remote" and scorer.stats["remote_calls"] == 1


def test_auto_without_server_scores_locally(free_port, shipped_artefacts):
    port = free_port
    scorer = Scorer("bdt", mode="auto", url=f"grpc://127.0.0.1:{port}", probe_timeout_s=1)
    x = toy_inputs("bdt", 4)
    assert np.array_equal(scorer(x)["output__0"], Scorer("bdt")(x)["output__0"])
    assert scorer.mode_used == "local"


@pytest.mark.triton
def test_clients_cannot_load_or_unload_models(server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.url.split("://")[1])
    with pytest.raises(InferenceServerException, match="(?i)restricted|unauthenticated|permission"):
        client.unload_model("bdt")
    with pytest.raises(InferenceServerException):
        client.load_model("bdt")
    assert client.is_model_ready("bdt")
    # the launcher's token opens the endpoint (loading an already loaded model is a no-op)
    client.load_model("bdt", headers=server.admin_headers("grpc"))
    assert client.is_model_ready("bdt")


@pytest.mark.triton
def test_http_model_control_is_restricted_too(server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.http_url.split("://")[1])
    with pytest.raises(InferenceServerException, match="(?i)restricted|forbidden|permission"):
        client.unload_model("bdt")
    assert client.is_model_ready("bdt")
    client.load_model("bdt", headers=server.admin_headers("http"))
    assert client.is_model_ready("bdt")


@pytest.mark.triton
def test_serve_returns_handle_with_urls(server):
    assert server.is_running() and server.url.startswith("grpc://127.0.0.1:")
    assert "running" in repr(server) and "tritonserver.log" in str(server.log_path)
    assert isinstance(server, hepinfer.serving.server.EmbeddedServer)


@pytest.mark.triton
def test_client_only_install_scores_remotely(server):
    """A user with only the base install (no onnxruntime, xgboost, torch, awkward, coffea, prometheus_client,
    PyYAML, tritonclient's HTTP client) scores remotely over gRPC, and local mode, an http:// URL and the
    coffea plug-in tell them which extra to install."""
    import subprocess
    import sys

    code = f"""
import sys
BLOCKED = ("onnxruntime", "xgboost", "torch", "awkward", "coffea", "prometheus_client", "yaml", "tritonclient.http")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED or name in BLOCKED:
            raise ImportError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
import numpy as np, hepinfer
x = {{"input__0": np.ones((3, 20), np.float32)}}
print(hepinfer.Scorer("bdt", mode="remote", url={server.url!r})(x)["output__0"].shape)
for mode, url in (("local", None), ("remote", {server.http_url!r})):
    try:
        hepinfer.Scorer("bdt", mode=mode, url=url, retries=0)(x)
    except hepinfer.ConfigError as err:
        print(mode, err)
try:
    import hepinfer.coffea
except ImportError as err:
    print("coffea:", err)
print(sorted(m for m in BLOCKED if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "(3, 2)"
    assert "pip install 'hepinfer[local]'" in lines[1] and "'hepinfer[local-cpu]'" in lines[1] and "xgboost" in lines[1]
    assert lines[2].startswith("remote") and "pip install 'hepinfer[http]'" in lines[2]
    assert lines[3].startswith("coffea:") and "pip install 'hepinfer[coffea]'" in lines[3]
    assert lines[4] == "[]"


@pytest.mark.triton
@pytest.mark.slow
def test_main_job_scores_generated_jets_locally_and_remotely(server, tmp_path, monkeypatch):
    from hepinfer.ml.demo import compare, format_table

    rows = compare(["bdt", "particlenet"], events=60, url=server.url)
    assert [r.model for r in rows] == ["bdt", "particlenet"]
    for r in rows:
        assert r.agree and r.jets > 10 and r.local_jets_per_s > 0 and r.remote_jets_per_s > 0
        assert r.weights == "trained" and 0.5 < r.auc <= 1.0
    table = format_table(rows)
    assert "| bdt | trained |" in table and "UNTRAINED" not in table
