"""The core tests' fixtures: a user's ONNX model in seconds, and a model only a server has."""

from __future__ import annotations

import pytest


def _tiny_onnx(path, n_in: int = 20, n_out: int = 2, seed: int = 0):
    """A linear layer and a softmax: input__0 (N, n_in) -> softmax (N, n_out)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (n_in, n_out)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (n_out,)).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input__0", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["softmax"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input__0", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("softmax", TensorProto.FLOAT, ["batch", n_out])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx():
    """``tiny_onnx(path, n_in=20, n_out=2, seed=0)`` writes a small ONNX model (a linear layer and a
    softmax, input__0 (N, n_in) -> softmax (N, n_out)) and returns its path: a user's model in seconds."""
    return _tiny_onnx


@pytest.fixture()
def server_only_spec():
    """A model only a server has (engine "remote"): declared here, its weights on grpc://example.org:8001."""
    from hepinfer.models import ModelSpec, TensorSpec

    return ModelSpec(
        name="elsewhere",
        inputs=(TensorSpec("input__0", "float32", (20,)),),
        outputs=(TensorSpec("softmax", "float32", (2,)),),
        max_batch_size=8,
        engine="remote",
        source="server grpc://example.org:8001",
    )
