"""A Triton model repository hepinfer did not write, served as it is by ``hepinfer serve --repository``.

The repositories here are written by hand, the way a site or CMS writes one: config.pbtxt text
and model files (a python-backend model, an ONNX model made with the onnx helper API, TorchScript
models scripted with torch, an XGBoost booster trained here for the FIL backend).  Each served
model must answer plain tritonclient and hepinfer's Scorer exactly as the model file answers when
run directly in this process (onnxruntime, torch.jit, xgboost).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hepinfer
from hepinfer import ConfigError, Scorer, ServerError
from hepinfer.serving.foreign import derive_repository
from hepinfer.serving.repository import read_config

# torch deprecates TorchScript, which is what pytorch_libtorch repositories hold
pytestmark = pytest.mark.filterwarnings("ignore:.torch.jit.*deprecated:DeprecationWarning")


PYTHON_MODEL = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            k = pb_utils.get_input_tensor_by_name(request, "k").as_numpy()
            h = pb_utils.get_input_tensor_by_name(request, "h").as_numpy()
            outputs = [
                pb_utils.Tensor("y", (2 * x + 1).astype(np.float32)),
                pb_utils.Tensor("k_next", (k + 1).astype(np.uint16)),
                pb_utils.Tensor("h_twice", (2 * h.astype(np.float64))),
            ]
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses
"""

CONFIGS = {
    "pymodel": """
backend: "python"
max_batch_size: 16
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "k" data_type: TYPE_UINT16 dims: [ 2 ] },
  { name: "h" data_type: TYPE_FP16 dims: [ 2 ] }
]
output [
  { name: "y" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "k_next" data_type: TYPE_UINT16 dims: [ 2 ] },
  { name: "h_twice" data_type: TYPE_FP64 dims: [ 2 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
""",
    "onnx_mlp": """
name: "onnx_mlp"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
version_policy: { all: {} }
instance_group [ { kind: KIND_GPU count: 2 } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
""",
    "mlp_chain": """
platform: "ensemble"
max_batch_size: 32
input [ { name: "features" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 3 ] } ]
ensemble_scheduling {
  step [ {
    model_name: "onnx_mlp"
    model_version: -1
    input_map { key: "INPUT__0" value: "features" }
    output_map { key: "OUTPUT__0" value: "scores" }
  } ]
}
""",
    "ts_varlen": """
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  { name: "mask__1" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "points__0" data_type: TYPE_FP32 dims: [ -1, 3 ] }
]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
dynamic_batching { }
""",
    "ts_nobatch": """
backend: "pytorch"
max_batch_size: 0
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 5 ] } ]
output [
  { name: "total" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "peak" data_type: TYPE_FP64 dims: [ -1 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
""",
    "fil_bdt": """
backend: "fil"
max_batch_size: 1024
input [ { name: "input__0" data_type: TYPE_FP32 dims: [ 5 ] } ]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { kind: KIND_AUTO } ]
parameters [
  { key: "model_type" value: { string_value: "xgboost_json" } },
  { key: "output_class" value: { string_value: "true" } },
  { key: "predict_proba" value: { string_value: "true" } },
  { key: "storage_type" value: { string_value: "AUTO" } }
]
dynamic_batching { }
""",
}


def _onnx_mlp(path: Path, seed: int) -> None:
    """tanh(x W + b), 4 -> 3, with a free batch axis (the onnx helper API)."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["INPUT__0", "W", "B"], ["H"]), helper.make_node("Tanh", ["H"], ["OUTPUT__0"])],
        "mlp",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def _torchscript(folder: Path) -> None:
    import torch

    class MaskedMean(torch.nn.Module):
        """Variable-length points: the masked mean of each jet's points, a linear layer, softmax."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, points, mask):
            pooled = (points * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
            return torch.softmax(self.linear(pooled), dim=1)

    class RowStats(torch.nn.Module):
        """No batch axis: per row of a (L, 5) tensor, its sum and (in float64) its maximum."""

        def forward(self, x):
            return x.sum(1), x.max(1).values.double()

    torch.jit.script(MaskedMean()).save(str(folder / "ts_varlen" / "1" / "model.pt"))
    torch.jit.script(RowStats()).save(str(folder / "ts_nobatch" / "1" / "model.pt"))


def _booster(path: Path):
    import xgboost as xgb

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] > 0).astype(np.int32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(x, label=y), 12)
    booster.save_model(str(path))


def _write(root: Path, name: str, config: str) -> Path:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(config)
    return root / name


@pytest.fixture(scope="module")
def handwritten(tmp_path_factory) -> Path:
    """A repository of five models, written as a user writes one."""
    root = tmp_path_factory.mktemp("site-repository")
    for name, config in CONFIGS.items():
        _write(root, name, config)
    (root / "pymodel" / "1" / "model.py").write_text(PYTHON_MODEL)
    (root / "onnx_mlp" / "2").mkdir()
    _onnx_mlp(root / "onnx_mlp" / "1" / "model.onnx", seed=1)
    _onnx_mlp(root / "onnx_mlp" / "2" / "model.onnx", seed=2)
    _torchscript(root)
    _booster(root / "fil_bdt" / "1" / "xgboost.json")
    return root


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


def _inputs(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    mask = np.ones((3, 7), dtype=np.float32)
    mask[0, 4:] = 0
    return {
        "pymodel": {
            "x": rng.normal(size=(5, 4)).astype(np.float32),
            "k": rng.integers(0, 60000, size=(5, 2)).astype(np.uint16),
            "h": rng.normal(size=(5, 2)).astype(np.float16),
        },
        "onnx_mlp": {"INPUT__0": rng.normal(size=(6, 4)).astype(np.float32)},
        "mlp_chain": {"features": rng.normal(size=(2, 4)).astype(np.float32)},
        "ts_varlen": {"points__0": rng.normal(size=(3, 7, 3)).astype(np.float32), "mask__1": mask},
        "ts_nobatch": {"x": rng.normal(size=(9, 5)).astype(np.float32)},
        "fil_bdt": {"input__0": rng.normal(size=(50, 5)).astype(np.float32)},
    }


def _direct(root: Path, name: str, inputs: dict, version: int = 1) -> dict[str, np.ndarray]:
    """What the model file answers when run directly in this process."""
    folder = root / name / str(version)
    if name == "pymodel":
        return {"y": 2 * inputs["x"] + 1, "k_next": inputs["k"] + 1, "h_twice": 2 * inputs["h"].astype(np.float64)}
    if name == "mlp_chain":  # the ensemble runs the latest version of onnx_mlp
        return {"scores": _direct(root, "onnx_mlp", {"INPUT__0": inputs["features"]}, version=2)["OUTPUT__0"]}
    if name == "onnx_mlp":
        import onnxruntime as ort

        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        return {"OUTPUT__0": session.run(None, inputs)[0]}
    if name.startswith("ts_"):
        import torch

        module = torch.jit.load(str(folder / "model.pt"))
        with torch.no_grad():
            if name == "ts_varlen":
                out = module(torch.from_numpy(inputs["points__0"]), torch.from_numpy(inputs["mask__1"]))
                return {"output__0": out.numpy()}
            total, peak = module(torch.from_numpy(inputs["x"]))
            return {"total": total.numpy(), "peak": peak.numpy()}
    import xgboost as xgb

    p = xgb.Booster(model_file=str(folder / "xgboost.json")).inplace_predict(inputs["input__0"])
    return {"output__0": np.stack([1 - p, p], axis=1).astype(np.float32)}


def _tritonclient(url: str, name: str, inputs: dict, version: str = "") -> dict[str, np.ndarray]:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    client = grpcclient.InferenceServerClient(url.split("://", 1)[1])
    try:
        meta = client.get_model_metadata(name, version, as_json=True)
        request = []
        for n, x in inputs.items():
            request.append(grpcclient.InferInput(n, list(x.shape), np_to_triton_dtype(x.dtype)))
            request[-1].set_data_from_numpy(x)
        result = client.infer(name, request, model_version=version)
        return {t["name"]: result.as_numpy(t["name"]) for t in meta["outputs"]}
    finally:
        client.close()


def _assert_close(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), what
    for n in want:
        assert got[n].dtype == want[n].dtype, f"{what} {n}: {got[n].dtype} != {want[n].dtype}"
        assert got[n].shape == want[n].shape, f"{what} {n}: {got[n].shape} != {want[n].shape}"
        assert np.allclose(got[n], want[n], rtol=1e-6, atol=1e-6), f"{what} {n}: {got[n]} != {want[n]}"


def _start_cli(*args: str) -> tuple[subprocess.Popen, str, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepinfer.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while not (lines and lines[-1].startswith("grpc://")) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    if not (lines and lines[-1].startswith("grpc://")):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("hepinfer serve did not print its URL:\n" + "".join(lines))
    return proc, lines[-1].strip(), lines


def _stop_cli(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.build  # the models are made with torch
def test_hepinfer_serve_serves_a_handwritten_repository_as_it_is(handwritten):
    before = _snapshot(handwritten)
    proc, url, lines = _start_cli("--repository", str(handwritten))
    try:
        text = "".join(lines)
        for name, platform, engine in (
            ("pymodel", "python", "its own model.py"),
            ("onnx_mlp", "onnxruntime_onnx", "onnxruntime engine"),
            ("ts_varlen", "pytorch_libtorch", "torchscript engine"),
            ("ts_nobatch", "pytorch", "torchscript engine"),
            ("fil_bdt", "fil xgboost_json", "fil engine"),
            ("mlp_chain", "ensemble", "ensemble scheduler (steps onnx_mlp)"),
        ):
            (line,) = [x for x in lines if x.split()[:2] == ["model", name]]
            assert platform in line and engine in line, text
        for name, inputs in _inputs().items():
            want = _direct(handwritten, name, inputs, version=2 if name == "onnx_mlp" else 1)
            _assert_close(_tritonclient(url, name, inputs), want, f"{name} (tritonclient)")
            scorer = Scorer(name, mode="remote", url=url)  # discovered from the server
            _assert_close(scorer(inputs), want, f"{name} (Scorer)")
            if name == "ts_nobatch":  # max_batch_size 0: its first axis is the rows', sent whole in one request
                assert scorer.spec.max_batch_size == 0 and scorer.stats["rows"][url] == len(inputs["x"])
        # every version the policy names is served; a variable length is variable
        x = _inputs(seed=4)
        _assert_close(
            _tritonclient(url, "onnx_mlp", x["onnx_mlp"], version="1"),
            _direct(handwritten, "onnx_mlp", x["onnx_mlp"], version=1),
            "onnx_mlp version 1",
        )
        longer = {"points__0": np.ones((2, 11, 3), np.float32), "mask__1": np.ones((2, 11), np.float32)}
        _assert_close(
            Scorer("ts_varlen", mode="remote", url=url)(longer), _direct(handwritten, "ts_varlen", longer), "longer"
        )
    finally:
        if proc.poll() is None:
            _stop_cli(proc)
    assert _snapshot(handwritten) == before  # the user's repository is untouched


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.build  # the models are made with torch
def test_a_model_that_cannot_be_served_is_named_and_the_others_serve(handwritten, tmp_path, caplog):
    root = tmp_path / "repository"
    root.mkdir()
    (root / "pymodel").symlink_to(handwritten / "pymodel")
    _write(root, "trt_tagger", 'platform: "tensorrt_plan"\nmax_batch_size: 8\n')
    (root / "trt_tagger" / "1" / "model.plan").write_bytes(b"\0")
    _write(root, "no_file", CONFIGS["onnx_mlp"].replace("onnx_mlp", "no_file"))
    _write(root, "garbage", CONFIGS["fil_bdt"])
    (root / "garbage" / "1" / "xgboost.json").write_text('{"not": "a booster"}')
    _write(root, "trt_chain", CONFIGS["mlp_chain"].replace("onnx_mlp", "trt_tagger"))

    with caplog.at_level("WARNING", logger="hepinfer"), hepinfer.serve(repository=root) as server:
        assert server.served_models == ("pymodel",)
        reasons = {m.name: m.error for m in server.repository_models if not m.servable}
        assert "tensorrt_plan" in reasons["trt_tagger"]
        assert "version 1 has no model.onnx" in reasons["no_file"]
        assert "failed to load" in reasons["garbage"] and "xgboost" in reasons["garbage"]
        assert "its step 'trt_tagger' cannot be served" in reasons["trt_chain"]
        inputs = _inputs()["pymodel"]
        _assert_close(_tritonclient(server.url, "pymodel", inputs), _direct(handwritten, "pymodel", inputs), "py")
    for name in reasons:
        assert any(f"model {name!r}" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records), name

    # a model named with models= is served or the start fails, naming it and why
    with pytest.raises(ConfigError, match="model 'trt_tagger'.*tensorrt_plan"):
        hepinfer.serve(["pymodel", "trt_tagger"], repository=root)
    with pytest.raises(ServerError, match="model 'garbage' failed to load.*log: "):
        hepinfer.serve(["garbage"], repository=root)


@pytest.mark.triton
@pytest.mark.slow
def test_the_production_repository_hepinfer_writes_is_served_too(tmp_path, shipped_artefacts):
    """What hepinfer writes for NVIDIA's container (onnxruntime_onnx, FIL, KIND_GPU instances) is
    served by the embedded server as well, with the scores of the local runtime."""
    from hepinfer.models.toy import toy_inputs
    from hepinfer.serving.repository import RepositoryOptions, write_repository

    models = ("particlenet", "bdt")
    out = write_repository(tmp_path / "production", RepositoryOptions(flavour="production", models=models, gpu=True))
    with hepinfer.serve(repository=out) as server:
        assert {m.name: m.engine for m in server.repository_models} == {"bdt": "fil", "particlenet": "onnxruntime"}
        for name in models:
            x = toy_inputs(name, 20, seed=2)
            local, remote = Scorer(name, mode="local")(x), Scorer(name, mode="remote", url=server.url)(x)
            _assert_close(remote, local, name)


@pytest.mark.build
def test_the_derived_repository_keeps_what_the_config_declares(handwritten, tmp_path):
    """The python-backend twin of each model: same name, tensors, dims, batching and versions,
    CPU instances, hepinfer's engine parameters; the model files linked, not copied."""
    out = tmp_path / "derived"
    found = {m.name: m for m in derive_repository(handwritten, out, list(CONFIGS))}
    assert all(m.servable for m in found.values()), found
    for path in ("config.pbtxt", "1/model.py"):  # served as it is
        assert (out / "pymodel" / path).resolve() == (handwritten / "pymodel" / path).resolve()
    for name in ("onnx_mlp", "ts_varlen", "ts_nobatch", "fil_bdt"):
        mine, theirs = read_config(out / name / "config.pbtxt"), read_config(handwritten / name / "config.pbtxt")
        assert mine.name == name and mine.backend == "python" and not mine.platform
        assert mine.max_batch_size == theirs.max_batch_size
        assert [(t.name, t.data_type, list(t.dims)) for t in mine.input] == [
            (t.name, t.data_type, list(t.dims)) for t in theirs.input
        ]
        assert [(t.name, t.data_type, list(t.dims)) for t in mine.output] == [
            (t.name, t.data_type, list(t.dims)) for t in theirs.output
        ]
        assert mine.HasField("dynamic_batching") == theirs.HasField("dynamic_batching")
        assert mine.version_policy == theirs.version_policy
        assert [g.count for g in mine.instance_group] == [g.count for g in theirs.instance_group]
        assert all(g.kind == g.KIND_CPU and not g.gpus for g in mine.instance_group)
        assert mine.parameters["engine"].string_value == found[name].engine
        for version in [p.name for p in (handwritten / name).iterdir() if p.name.isdigit()]:
            linked = out / name / version / found[name].filename
            assert linked.is_symlink() and linked.resolve() == (handwritten / name / version / linked.name).resolve()
            assert (out / name / version / "model.py").is_file()
    assert read_config(out / "fil_bdt" / "config.pbtxt").parameters["model_type"].string_value == "xgboost_json"
    assert not read_config(
        out / "onnx_mlp" / "config.pbtxt"
    ).optimization.execution_accelerators.gpu_execution_accelerator


# ---------------------------------------------------------------------------------------------
# quick: the FIL engine, Triton's data types, the server's options for a repository


def _train(objective: str, labels, rounds: int = 6, **params):
    import xgboost as xgb

    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    booster = xgb.train({"objective": objective, "max_depth": 2, **params}, xgb.DMatrix(x, label=labels(x)), rounds)
    return booster, x


def _fil(booster, tmp_path, filename="xgboost.json", **options):
    from hepinfer.runtime.engines import FilEngine

    path = tmp_path / filename
    booster.save_model(str(path))
    return FilEngine(str(path), ["input__0"], ["output__0"], 1, **options)


def test_the_fil_engine_answers_what_the_fil_parameters_ask_for(tmp_path):
    binary, x = _train("binary:logistic", lambda x: (x[:, 0] > 0).astype(int))
    p = binary.inplace_predict(x)

    def run(engine):
        return engine.run({"input__0": x})["output__0"]

    proba = run(_fil(binary, tmp_path, output_class=True, predict_proba=True, output_shape=[2]))
    assert proba.dtype == np.float32 and np.allclose(proba, np.stack([1 - p, p], axis=1))
    single = run(_fil(binary, tmp_path, "xgboost.ubj", model_type="xgboost_ubj", output_class=True, predict_proba=True))
    assert single.shape == (len(x), 1) and np.allclose(single[:, 0], p)
    classes = run(_fil(binary, tmp_path, output_class=True, threshold=0.3, output_shape=[1]))
    assert np.array_equal(classes[:, 0], (p > 0.3).astype(np.float32)) and 0 < classes.sum() < len(x)
    assert np.allclose(run(_fil(binary, tmp_path, output_shape=[1]))[:, 0], p)  # a regressor's score

    softprob, _ = _train("multi:softprob", lambda x: np.digitize(x[:, 0], [-0.5, 0.5]), num_class=3)
    softmax, _ = _train("multi:softmax", lambda x: np.digitize(x[:, 0], [-0.5, 0.5]), num_class=3)
    want = softprob.inplace_predict(x)
    assert np.allclose(run(_fil(softprob, tmp_path, output_class=True, predict_proba=True, output_shape=[3])), want)
    from_softmax = run(_fil(softmax, tmp_path, output_class=True, predict_proba=True, output_shape=[3]))
    assert np.allclose(from_softmax, want, atol=1e-6)  # same trees: the probabilities from the margins
    assert np.array_equal(
        run(_fil(softmax, tmp_path, output_class=True, output_shape=[1]))[:, 0], softmax.inplace_predict(x)
    )
    with pytest.raises(ValueError, match="model_type 'xgboost_ubj', but the file is JSON"):
        _fil(binary, tmp_path, model_type="xgboost_ubj")
    with pytest.raises(ValueError, match="'lightgbm' is not XGBoost's"):
        _fil(binary, tmp_path, model_type="lightgbm")


def test_every_triton_data_type_is_tritonclients_mapping():
    from tritonclient.grpc import model_config_pb2
    from tritonclient.utils import triton_to_np_dtype

    from hepinfer.models.spec import DTYPES, TensorSpec, triton_types
    from hepinfer.runtime.discovery import _tensors

    config_types = [t for t in model_config_pb2.DataType.keys() if t != "TYPE_INVALID"]
    assert sorted(c for c, _, _ in triton_types().values()) == sorted(config_types)
    for name in DTYPES:
        t = TensorSpec("t", name, (2,))
        assert np.dtype(triton_to_np_dtype(t.wire_dtype)) == t.numpy_dtype
        assert t.triton_config_type == ("TYPE_STRING" if t.wire_dtype == "BYTES" else f"TYPE_{t.wire_dtype}")
    metadata = [
        {"name": n, "datatype": w, "shape": [-1, 3]} for n, w in (("a", "BF16"), ("b", "BYTES"), ("c", "UINT16"))
    ]
    assert [(t.dtype, t.shape) for t in _tensors("model 'm'", "input", metadata)] == [
        ("bfloat16", (3,)),
        ("object", (3,)),
        ("uint16", (3,)),
    ]
    with pytest.raises(ConfigError, match="tensor 'z': dtype 'complex64' has no Triton data type"):
        _ = TensorSpec("z", "complex64", (1,)).wire_dtype


def test_server_options_for_a_repository_name_its_models(tmp_path):
    from dataclasses import replace

    from hepinfer.serving.server_options import ServerOptions

    for name in ("b_model", "a_model"):
        _write(tmp_path, name, 'backend: "python"\n')
    (tmp_path / ".hidden").mkdir()
    every = ServerOptions(repository=tmp_path)
    assert every.models == ("a_model", "b_model") and every.skip_unservable
    assert replace(every, host="127.0.0.2").skip_unservable  # kept by replace
    named = ServerOptions(models=["b_model"], repository=tmp_path)
    assert named.models == ("b_model",) and not named.skip_unservable
    with pytest.raises(ConfigError, match=r"model 'tagger' is not in the repository .* \(it holds: a_model, b_model\)"):
        ServerOptions(models=["tagger"], repository=tmp_path)
    with pytest.raises(ConfigError, match="model repository .*nowhere does not exist"):
        ServerOptions(repository=tmp_path / "nowhere")
