"""``hepinfer.coffea.triton_wrapper`` against coffea's own ``coffea.ml_tools.triton_wrapper``: one
processor-style subclass (``prepare_awkward`` as coffea's documentation writes it, on a real CMS
NanoAOD file's fat jets) runs on both, against the same real embedded Triton server, eager and in
dask mode, with identical outputs.  The server's own statistics show what differs: hepinfer sends the
rows it was given (coffea pads every request to its batch size) and builds the dask graph without a
request (coffea calls the model while the graph is built)."""

import pickle
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from coffea.ml_tools.triton_wrapper import triton_wrapper as coffea_wrapper

import hepinfer
from hepinfer import ConfigError, InputMismatch, ServerUnavailable
from hepinfer.coffea import triton_wrapper
from hepinfer.models import SPECS, ModelSpec, TensorSpec

REAL = Path(__file__).resolve().parents[3] / "shared" / "realfiles" / "nano_tt_v12.root"
MODEL = "bdt_nanoaod"  # the shipped BDT on FatJet branches: what a NanoAOD file without PF candidates feeds
UNDECLARED = "ml_tools_tagger3"  # served, then unregistered: a model only the server knows
pytestmark = pytest.mark.skipif(not REAL.is_file(), reason=f"the real CMS file {REAL} is not there")


class FatJetVariables:
    """A user's processor code, as coffea's ml_tools documentation writes it: nine variables of every
    fat jet, one row per jet; the model's output per jet."""

    output = "output__0"

    def prepare_awkward(self, events):
        ak = self.get_awkward_lib(events)
        jets = ak.flatten(events.FatJet)

        def ratio(num, den):  # 0 where the denominator is
            ok = den > 0
            return ak.where(ok, num / ak.where(ok, den, 1.0), 0.0)

        # tau2 by field name: coffea's Lorentz-vector behaviour shadows it (proper time squared)
        tau = [jets[f"tau{i}"] for i in range(1, 5)]
        columns = [jets.pt, jets.eta, jets.mass, jets.msoftdrop, ratio(tau[1], tau[0]), ratio(tau[2], tau[1])]
        columns += [ratio(tau[3], tau[2]), ratio(jets.mass, jets.pt), ratio(jets.msoftdrop, jets.pt)]
        inputs = ak.concatenate([c[:, np.newaxis] for c in columns], axis=1)
        return [], {"output_list": [self.output], "input_dict": {"input__0": ak.values_astype(inputs, np.float32)}}

    def postprocess_awkward(self, outputs, events):
        return outputs[self.output]


class CoffeaTagger(FatJetVariables, coffea_wrapper):
    pass


class HepinferTagger(FatJetVariables, triton_wrapper):
    pass


class CoffeaTagger3(CoffeaTagger):
    output = "softmax"


class HepinferTagger3(HepinferTagger):
    output = "softmax"


@pytest.fixture(scope="module")
def events(open_events):
    return open_events(REAL, "NanoAODSchema")


@pytest.fixture(scope="module")
def dask_events(open_events):
    return open_events(REAL, "NanoAODSchema", "dask", steps=[[0, 100], [100, 200]])


@pytest.fixture(scope="module")
def ml_server(shipped_artefacts, tiny_onnx, tmp_path_factory):
    """The embedded server with ``bdt_nanoaod`` and a 3-class network that this process declares
    only long enough to serve it."""
    path = tiny_onnx(tmp_path_factory.mktemp("ml-tools") / "tagger3.onnx", n_in=9, n_out=3)
    three = ModelSpec(
        name=UNDECLARED,
        inputs=(TensorSpec("input__0", "float32", (9,)),),
        outputs=(TensorSpec("softmax", "float32", (3,)),),
        classes=("qcd", "top", "w"),
        max_batch_size=512,
        engine="onnxruntime",
        artefact_file=path,
    )
    with hepinfer.serve([MODEL, three]) as srv:
        SPECS.unregister(UNDECLARED)
        yield srv


def _urls(server, model):
    address = server.url.split("://", 1)[1]
    return f"triton+grpc://{address}/{model}/1", {"ssl": False}


def _statistics(server, model):
    """(rows inferred, requests) as the server counts them."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.url.split("://", 1)[1])
    try:
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        client.close()
    return int(stats.get("inference_count", 0)), int(stats["inference_stats"]["success"].get("count", 0))


def _statistics_reaching(server, model, rows):
    """The statistics once they count ``rows`` rows (the python backend reports a request just after
    answering it), then read again: what a request still on its way would add shows."""
    for _ in range(200):
        if _statistics(server, model)[0] >= rows:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return _statistics(server, model)


def _jets(events):
    return int(ak.sum(ak.num(events.FatJet, axis=1)))


# -- quick: no server -----------------------------------------------------------------------------
def test_the_constructor_takes_coffeas_arguments_and_asks_no_server(free_port):
    url = f"triton+grpc://127.0.0.1:{free_port}/{MODEL}/1"  # nothing listens there
    tagger = HepinferTagger(url, retries=2)
    assert (tagger.protocol, tagger.address, tagger.model, tagger.version) == (
        "grpc",
        f"127.0.0.1:{free_port}",
        MODEL,
        "1",
    )
    assert tagger.config.mode == "remote" and tagger.config.retries == 2
    assert tagger.config.use_ssl  # coffea's gRPC default
    assert not HepinferTagger(url, client_args={"ssl": False}).config.use_ssl
    assert tagger.batch_size == SPECS[MODEL].max_batch_size  # from the declaration
    assert tagger.model_inputs == {"input__0": {"shape": (-1, 9), "datatype": "FP32"}}
    assert tagger.model_outputs == {"output__0": {"shape": (-1, 2)}}
    http = HepinferTagger(
        f"triton+http://127.0.0.1:{free_port}/{MODEL}/1",
        client_args={"concurrency": 4, "network_timeout": 7.0, "ssl_options": {}},
        batch_size=100,
    )
    assert http.config.triton_url.protocol == "http" and not http.config.use_ssl
    assert http.config.timeout_s == 7.0 and http.batch_size == 100
    clone = pickle.loads(pickle.dumps(tagger))
    assert clone.config == tagger.config and clone.spec == SPECS[MODEL]


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ConfigError, match="names no model"):
        HepinferTagger("triton+grpc://127.0.0.1:8001")
    with pytest.raises(ConfigError, match=r"client_args \['channel_args'\] are not supported over grpc"):
        HepinferTagger(f"triton+grpc://127.0.0.1:8001/{MODEL}/1", client_args={"channel_args": []})
    with pytest.raises(ConfigError, match="come from model_url"):
        HepinferTagger(f"triton+grpc://127.0.0.1:8001/{MODEL}/1", mode="local")
    tagger = HepinferTagger(f"triton+grpc://127.0.0.1:8001/{MODEL}/1")
    rows = np.zeros((3, 9), np.float32)
    with pytest.raises(InputMismatch, match=r"input 'input__0' has shape \(3, 8\), expected \(-1, 9\)"):
        tagger.validate_numpy_input(["output__0"], {"input__0": rows[:, :8]})
    with pytest.raises(InputMismatch, match="input 'x' is not defined"):
        tagger.validate_numpy_input(["output__0"], {"input__0": rows, "x": rows})
    with pytest.raises(InputMismatch, match=r"output \['softmax'\] is not defined"):
        tagger.validate_numpy_input(["softmax"], {"input__0": rows})
    with pytest.warns(UserWarning, match="dtype float64, the model takes float32: converted"):
        tagger.validate_numpy_input(["output__0"], {"input__0": rows.astype(np.float64)})


def test_a_dask_graph_is_built_while_no_server_listens(dask_events, free_port):
    url = f"triton+grpc://127.0.0.1:{free_port}/{MODEL}/1"
    graph = HepinferTagger(url, client_args={"ssl": False}, retries=0, timeout_s=5)(dask_events)
    assert str(graph.type).endswith(" * 2 * float32")  # the declared output type
    with pytest.raises(ServerUnavailable, match=str(free_port)):
        graph.compute(scheduler="sync")


# -- against the real server ----------------------------------------------------------------------
@pytest.mark.triton
def test_eager_outputs_are_identical_and_unpadded(ml_server, events):
    url, client_args = _urls(ml_server, MODEL)
    jets = _jets(events)
    want = CoffeaTagger(url, client_args)(events)
    rows, requests = _statistics_reaching(ml_server, MODEL, 1)
    got = HepinferTagger(url, client_args)(events)
    assert isinstance(got, ak.Array) and got.type == want.type and len(got) == jets
    assert np.array_equal(ak.to_numpy(got), ak.to_numpy(want))
    assert 0 < float(ak.min(got)) and float(ak.max(got)) < 1 and np.allclose(ak.sum(got, axis=1), 1)
    assert _statistics_reaching(ml_server, MODEL, rows + jets) == (rows + jets, requests + 1)  # no padding
    pieces = HepinferTagger(url, client_args, batch_size=50)(events)  # 39 + 39 + 38 rows, in flight
    assert np.array_equal(ak.to_numpy(pieces), ak.to_numpy(want))
    assert _statistics_reaching(ml_server, MODEL, rows + 2 * jets) == (rows + 2 * jets, requests + 4)
    http = f"triton+http://{ml_server.http_url.split('://', 1)[1]}/{MODEL}/1"
    assert np.array_equal(ak.to_numpy(HepinferTagger(http)(events)), ak.to_numpy(want))
    with pytest.raises(TypeError, match="as_json"):  # coffea's own wrapper passes a gRPC-only argument
        CoffeaTagger(http)(events)
    with pytest.raises(ServerUnavailable, match=r"TLS.*client_args=\{'ssl': False\} for a server without it"):
        HepinferTagger(url, retries=0)(events)  # coffea's default for triton+grpc://: TLS


@pytest.mark.triton
def test_dask_outputs_are_identical_and_the_graph_asks_nothing(ml_server, events, dask_events):
    import dask

    url, client_args = _urls(ml_server, MODEL)
    jets = _jets(events)
    before = _statistics(ml_server, MODEL)
    coffea_graph = CoffeaTagger(url, client_args)(dask_events)
    after_coffea = _statistics_reaching(ml_server, MODEL, before[0] + 1)
    assert after_coffea[1] > before[1]  # coffea's graph asked the server (length-one arrays, padded)
    graph = HepinferTagger(url, client_args)(dask_events)
    assert graph.npartitions == 2
    (got,) = dask.compute(graph, scheduler="sync")
    # the graph was built and computed: one request per partition with its jets, nothing else
    assert _statistics_reaching(ml_server, MODEL, after_coffea[0] + jets) == (
        after_coffea[0] + jets,
        after_coffea[1] + 2,
    )
    (want,) = dask.compute(coffea_graph, scheduler="sync")
    eager = HepinferTagger(url, client_args)(events)
    assert np.array_equal(ak.to_numpy(got), ak.to_numpy(want))
    assert np.array_equal(ak.to_numpy(got), ak.to_numpy(eager))


@pytest.mark.triton
def test_a_model_hepinfer_never_declared(ml_server, events, dask_events):
    """The spec comes from the server's metadata (read, not inferred); nothing is registered."""
    import dask

    url, client_args = _urls(ml_server, UNDECLARED)
    jets = _jets(events)
    assert UNDECLARED not in SPECS
    want = CoffeaTagger3(url, client_args)(events)
    rows, requests = _statistics_reaching(ml_server, UNDECLARED, 1)
    tagger = HepinferTagger3(url, client_args)
    got = tagger(events)
    assert np.array_equal(ak.to_numpy(got), ak.to_numpy(want)) and ak.to_numpy(got).shape == (jets, 3)
    assert tagger.spec.engine == "remote" and tagger.spec.max_batch_size == 512
    graph = HepinferTagger3(url, client_args)(dask_events)  # reads the metadata here, asks for no inference
    (computed,) = dask.compute(graph, scheduler="sync")
    assert np.array_equal(ak.to_numpy(computed), ak.to_numpy(want))
    assert _statistics_reaching(ml_server, UNDECLARED, rows + 2 * jets) == (rows + 2 * jets, requests + 3)
    assert UNDECLARED not in SPECS
    assert pickle.loads(pickle.dumps(tagger)).spec == tagger.spec  # the workers receive it
