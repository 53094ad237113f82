"""The torch engine: exported programs derived from the ONNX artefacts, on CPU here (CUDA tests are
marked ``gpu`` and skip without a device), in the embedded server with DLPack, and the config of a
GPU repository parsed back."""

from __future__ import annotations

import numpy as np
import pytest

import hepinfer
from hepinfer.errors import ConfigError, HepinferError, ServerError
from hepinfer.models import get_spec
from hepinfer.models.toy import toy_inputs
from hepinfer.serving.repository import RepositoryOptions, model_config, read_config, write_repository
from hepinfer.serving.server import ServerOptions

NETWORKS = ("particlenet", "resnet50")
# fp32 agreement with local onnxruntime: 1e-5 for ParticleNet; ResNet50's 53 convolutions, run by
# different kernels (oneDNN in torch, MLAS in onnxruntime), accumulate float32 rounding to ~1e-5
AGREE = {"particlenet": 1e-5, "resnet50": 3e-5}


def _engine(name: str, **options):
    from hepinfer.models.architectures.torch_export import build_torch
    from hepinfer.runtime.engines import TorchEngine

    spec = get_spec(name)
    shapes = {t.name: t.shape for t in spec.inputs}
    return TorchEngine(str(build_torch(spec)), spec.input_names, spec.output_names, input_shapes=shapes, **options)


def _local(name: str, x: dict) -> dict:
    from hepinfer.runtime.local import LocalRuntime

    return LocalRuntime(get_spec(name)).infer(x)


@pytest.mark.build
@pytest.mark.parametrize("name", NETWORKS)
def test_torch_program_agrees_with_onnxruntime(artefacts, name):
    """fp32 on CPU: the exported program scores as the ONNX artefact does (1e-5 for ParticleNet), on
    inputs it was not checked on at build time; the manifest records the build's check."""
    from hepinfer.models.catalogue import manifest

    x = toy_inputs(name, 57, seed=404)
    got, want = _engine(name).run(x), _local(name, x)
    for out in get_spec(name).output_names:
        assert got[out].dtype == np.float32 and got[out].shape == want[out].shape
        assert np.abs(got[out] - want[out]).max() <= AGREE[name]
    assert manifest(get_spec(name))["torch"]["onnx_vs_torch_max_abs_diff"] <= AGREE[name]


@pytest.mark.build
@pytest.mark.parametrize("name", NETWORKS)
def test_exported_program_fixes_no_device_or_dtype(artefacts, name):
    """Nothing in the graph names a device or a dtype: the same file runs on any GPU and in any
    precision (an ``arange(device=...)`` or ``.to(float32)`` would be baked in by the export)."""
    import torch

    from hepinfer.models.architectures.torch_export import build_torch

    program = torch.export.load(str(build_torch(get_spec(name))))
    fixed = [
        (str(node.target), {k: v for k, v in node.kwargs.items() if k in ("device", "dtype")})
        for node in program.graph.nodes
        if node.op == "call_function" and any(node.kwargs.get(k) is not None for k in ("device", "dtype"))
    ]
    assert fixed == []


@pytest.mark.build
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_scores_close_and_finite(artefacts, precision):
    """ParticleNet in bf16 / fp16 on CPU: float32 probabilities that sum to one, differ from fp32 (so
    the precision really changed) but stay close; the neighbour search runs in fp32 (the 1e9 shift
    of padded particles would overflow fp16 and give NaN)."""
    x = toy_inputs("particlenet", 64, seed=5)
    want = _local("particlenet", x)["softmax"]
    engine = _engine("particlenet", precision=precision)
    got = engine.run(x)["softmax"]
    assert engine.precision == precision and got.dtype == np.float32
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-2)
    diff = np.abs(got - want).max()
    assert 0 < diff < 0.5


@pytest.mark.build
def test_max_rows_splits_a_batch_without_changing_it(artefacts):
    x = toy_inputs("particlenet", 30, seed=8)
    whole = _engine("particlenet").run(x)["softmax"]
    engine = _engine("particlenet", max_rows=8)
    np.testing.assert_allclose(engine.run(x)["softmax"], whole, atol=1e-6)


@pytest.mark.build
@pytest.mark.slow
# inductor's first compile in a fresh cache imports torch.jit code that warns of its own deprecation
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_engine_reports_compile_time_and_agrees(artefacts):
    """torch.compile on CPU (inductor): warmed up at load, compile time reported, same scores."""
    x = toy_inputs("particlenet", 20, seed=9)
    engine = _engine("particlenet", compiled=True, threads=2)
    assert engine.compile_seconds is not None and engine.compile_seconds > 0
    np.testing.assert_allclose(engine.run(x)["softmax"], _local("particlenet", x)["softmax"], atol=1e-5)


def test_a_compiled_engine_needs_input_shapes():
    from hepinfer.runtime.engines import TorchEngine

    with pytest.raises(ValueError, match="input_shapes"):
        TorchEngine("unused.pt2", ["a"], ["b"], compiled=True)


@pytest.mark.build
def test_onnx_weights_of_another_network_are_refused(artefacts, tmp_path):
    """Loading ResNet50's ONNX file into ParticleNet names the file and the layer that does not fit."""
    from hepinfer.models.architectures import network
    from hepinfer.models.architectures.torch_export import load_onnx_weights
    from hepinfer.models.catalogue import artefact_path

    with pytest.raises(
        HepinferError, match=r"particlenet: .*resnet50.*(does not match the network|fewer \w+ layers than the network)"
    ):
        particlenet = get_spec("particlenet")
        load_onnx_weights(network(particlenet), artefact_path(get_spec("resnet50")), particlenet)


def test_torch_engine_only_for_the_networks():
    from hepinfer.models.architectures.torch_export import build_torch

    with pytest.raises(ConfigError, match="served by its own engine"):
        build_torch(get_spec("bdt"))


# -- repository configs -----------------------------------------------------------------------


def test_gpu_config_has_gpu_instances_and_says_what_runs():
    """engine torch on cuda:1: KIND_GPU on GPU 1, the parameters the model.py and clients read; the
    BDT of the same repository stays on CPU instances with xgboost."""
    from tritonclient.grpc import model_config_pb2 as pb

    options = RepositoryOptions(
        models=("particlenet", "bdt"), engine="torch", device="cuda:1", precision="fp16", instances=2
    )
    net = model_config(get_spec("particlenet"), options)
    assert net.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert list(net.instance_group[0].gpus) == [1] and net.instance_group[0].count == 2
    params = {k: v.string_value for k, v in net.parameters.items()}
    assert params["engine"] == "torch" and params["artefact"] == "model.pt2"
    assert params["precision"] == "fp16" and params["device"] == "cuda" and params["compiled"] == "false"
    assert params["max_rows"] == str(net.max_batch_size)
    bdt = model_config(get_spec("bdt"), options)
    assert bdt.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert bdt.parameters["engine"].string_value == "xgboost"
    assert bdt.parameters["precision"].string_value == "fp32"


@pytest.mark.build
def test_torch_repository_written_and_parsed_back(artefacts, tmp_path):
    options = RepositoryOptions(models=("particlenet", "bdt"), engine="torch", device="cuda:0", compiled=True)
    out = write_repository(tmp_path / "repo", options)
    assert (out / "particlenet" / "1" / "model.pt2").exists()
    assert (out / "bdt" / "1" / get_spec("bdt").artefact).exists()
    cfg = read_config(out / "particlenet" / "config.pbtxt")
    assert cfg.parameters["compiled"].string_value == "true" and list(cfg.instance_group[0].gpus) == [0]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"precision": "fp16"}, "need engine='torch'"),
        ({"device": "cuda:0"}, "need engine='torch'"),
        ({"engine": "torch", "device": "gpu"}, "device must be 'cpu' or 'cuda:N'"),
        ({"engine": "torch", "precision": "fp8"}, "precision must be one of"),
        ({"engine": "tensorrt"}, "engine must be one of"),
    ],
)
def test_engine_choices_checked(options, match):
    with pytest.raises(ConfigError, match=match):
        RepositoryOptions(models=("particlenet",), **options)
    with pytest.raises(ConfigError, match=match):
        ServerOptions(models=("particlenet",), **options)


def test_memory_sizes_parsed():
    from hepinfer.cli.arguments import parse_bytes

    assert parse_bytes("40GB") == 40 * 10**9
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("1e9") == 10**9
    for bad in ("forty", "10 parsecs", "-1GB"):
        with pytest.raises(ConfigError, match="memory size"):
            parse_bytes(bad)


# -- the embedded server --------------------------------------------------------------------


@pytest.mark.triton
@pytest.mark.build
def test_served_torch_fp32_equals_local(artefacts):
    """``hepinfer serve --engine torch`` on CPU: ParticleNet through the python backend with DLPack
    equals local onnxruntime to 1e-5, the BDT (xgboost, same server) exactly; requests merged by the
    dynamic batcher come back to the right caller."""
    from concurrent.futures import ThreadPoolExecutor

    from hepinfer.runtime.triton import TritonRuntime

    with hepinfer.serve(["particlenet", "bdt"], engine="torch", device="cpu", precision="fp32") as server:
        assert server.serving == {"engine": "torch", "device": "cpu", "precision": "fp32", "compiled": False}
        for name in ("particlenet", "bdt"):
            x = toy_inputs(name, 300, seed=31)
            got = TritonRuntime(get_spec(name), url=server.url).infer(x)
            want = _local(name, x)
            for out in get_spec(name).output_names:
                assert np.abs(got[out] - want[out]).max() <= 1e-5
        batches = [toy_inputs("particlenet", n, seed=n) for n in (3, 17, 40, 1, 9, 25)]
        runtime = TritonRuntime(get_spec("particlenet"), url=server.url)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(runtime.infer, batches))
        for x, got in zip(batches, answers):
            np.testing.assert_allclose(got["softmax"], _local("particlenet", x)["softmax"], atol=1e-5)


def test_gpu_environment_refused_without_cuda_torch(tmp_path, monkeypatch):
    """``hepinfer setup --gpu`` on an interpreter whose torch sees no GPU (or that has no torch) says
    so and names the interpreter, before anything is created."""
    import sys

    from hepinfer.serving.environment import ensure_server_env

    monkeypatch.setenv("HEPINFER_SERVER_PYTHON", sys.executable)
    root = tmp_path / "server-env"
    with pytest.raises(ServerError, match=rf"{sys.executable}.*(sees no CUDA device|no torch)"):
        ensure_server_env(root, gpu=True)
    assert not root.exists()


# -- on a GPU -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.build
@pytest.mark.parametrize("name", NETWORKS)
def test_cuda_fp32_agrees_with_onnxruntime(artefacts, name):
    x = toy_inputs(name, 64, seed=77)
    got, want = _engine(name, device="cuda:0").run(x), _local(name, x)
    for out in get_spec(name).output_names:
        assert np.abs(got[out] - want[out]).max() <= AGREE[name]


@pytest.mark.gpu
@pytest.mark.triton
@pytest.mark.build
def test_served_on_cuda_fp32_equals_local(artefacts):
    from hepinfer.runtime.triton import TritonRuntime

    with hepinfer.serve(["particlenet", "bdt"], engine="torch", device="cuda:0") as server:
        x = toy_inputs("particlenet", 200, seed=3)
        got = TritonRuntime(get_spec("particlenet"), url=server.url).infer(x)
        np.testing.assert_allclose(got["softmax"], _local("particlenet", x)["softmax"], atol=1e-5)
