import re

import numpy as np
import pytest

import hepinfer
from hepinfer import InputMismatch, ModelNotFound, get_spec
from hepinfer.models import SPECS
from hepinfer.models.toy import toy_inputs
from hepinfer.serving import repository


def test_built_in_models_declared():
    assert {name for name in SPECS if SPECS.source_of(name) == "built-in"} == {
        "particlenet",
        "resnet",
        "resnet50",
        "bdt",
        "bdt_nanoaod",
    }
    pn = get_spec("particlenet")
    assert [t.name for t in pn.inputs] == ["points", "features", "mask"]
    assert pn.input("points").shape == (2, 100) and pn.input("mask").shape == (1, 100)
    assert pn.outputs[0].shape == (2,)
    assert len(get_spec("bdt").extra["features"]) == get_spec("bdt").inputs[0].shape[0] == 20
    c, h, w = get_spec("resnet50").input("images").shape
    assert (c, h, w) == (3, 64, 64)


def test_unknown_model_lists_known():
    with pytest.raises(ModelNotFound) as info:
        get_spec("transformer")
    for name in SPECS:
        assert name in str(info.value)
    assert isinstance(info.value, hepinfer.HepinferError)


@pytest.mark.parametrize("model", list(SPECS))
def test_toy_inputs_validate(model):
    assert get_spec(model).validate(toy_inputs(model, 7)) == 7


def test_validation_names_the_tensor_and_shapes():
    spec = get_spec("particlenet")
    x = toy_inputs("particlenet", 4)
    bad = dict(x, features=x["features"][:, :, :99])
    with pytest.raises(InputMismatch, match=r"'features'.*\(N, 15, 100\).*\(4, 15, 99\)"):
        spec.validate(bad)
    with pytest.raises(InputMismatch, match=r"'mask'.*dtype float32, got float64"):
        spec.validate(dict(x, mask=x["mask"].astype(np.float64)))
    with pytest.raises(InputMismatch, match=r"missing \['points'\]"):
        spec.validate({k: v for k, v in x.items() if k != "points"})
    with pytest.raises(InputMismatch, match=r"unexpected \['extra'\]"):
        spec.validate(dict(x, extra=x["mask"]))
    with pytest.raises(InputMismatch, match=r"'mask': batch size 3 differs from 4"):
        spec.validate(dict(x, mask=x["mask"][:3]))
    with pytest.raises(InputMismatch, match="dict of numpy arrays"):
        spec.validate([x["points"]])


@pytest.mark.parametrize("flavour", ["embedded", "production"])
@pytest.mark.parametrize("model", list(SPECS))
def test_spec_config_round_trip(model, flavour, tmp_path):
    spec = get_spec(model)
    opts = repository.RepositoryOptions(flavour=flavour, instances=2, max_queue_delay_us=250)
    path = tmp_path / "config.pbtxt"
    path.write_text(repository.render_config(spec, opts))
    cfg = repository.read_config(path)
    assert cfg.name == spec.name and cfg.max_batch_size == spec.max_batch_size
    pb = repository._pb()
    assert [(i.name, pb.DataType.Name(i.data_type), tuple(i.dims)) for i in cfg.input] == [
        (t.name, t.triton_config_type, t.shape) for t in spec.inputs
    ]
    assert [(o.name, tuple(o.dims)) for o in cfg.output] == [(t.name, t.shape) for t in spec.outputs]
    assert cfg.instance_group[0].count == 2
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 250
    if flavour == "embedded":
        assert cfg.backend == "python" and cfg.parameters["engine"].string_value == spec.engine
    elif spec.engine == "onnxruntime":
        assert cfg.platform == "onnxruntime_onnx"
    else:
        assert cfg.backend == "fil" and cfg.parameters["model_type"].string_value == "xgboost_json"


def test_invalid_config_is_named(tmp_path):
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "x"\nmax_batch_size: "many"\n')
    with pytest.raises(hepinfer.ConfigError, match=re.escape(str(bad))):
        repository.read_config(bad)


def test_production_options():
    spec = get_spec("particlenet")
    pb = repository._pb()
    cfg = repository.model_config(
        spec, repository.RepositoryOptions(flavour="production", gpu=True, tensorrt=True, dynamic_batching=False)
    )
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert cfg.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "tensorrt"
    assert not cfg.HasField("dynamic_batching")
    with pytest.raises(hepinfer.ConfigError, match="flavour"):
        repository.RepositoryOptions(flavour="docker")
