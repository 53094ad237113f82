"""The TOML writer of model declarations (hepinfer.models.declare.write_toml, tomli-w): what it writes
reads back equal, whatever quotes, backslashes, unicode, control characters or TOML syntax the
strings hold, and in whatever folder the artefact sits."""

from __future__ import annotations

import tomllib

import pytest

from hepinfer import ConfigError, ModelSpec, TensorSpec
from hepinfer.models import Domain
from hepinfer.models.declare import load_toml, to_toml, write_toml

AWKWARD = [
    'double " quote',
    "single ' quote and ''' three",
    "back\\slash \\n not a newline \\u0041",
    "ünïcödé ✓ 顶夸克 🎯",
    "line\nbreak\ttab \x7f del \x01 control",
    '[model.x] = "toml" # not a comment',
    '"""',
]


def _remote(**changes) -> ModelSpec:
    fields = dict(
        name="elsewhere",
        inputs=(TensorSpec("input__0", "float32", (20,), description=AWKWARD[0]),),
        outputs=(TensorSpec("softmax", "float32", (len(AWKWARD),), description=AWKWARD[3]),),
        max_batch_size=8,
        engine="remote",
    )
    return ModelSpec(**{**fields, **changes})


def test_awkward_strings_read_back_equal(tmp_path):
    spec = _remote(
        description=" | ".join(AWKWARD),
        classes=tuple(AWKWARD),
        version=3,
        domain=Domain(pt=(250.0, 1800.5), eta_max=2.4, sample=AWKWARD[2], detector=AWKWARD[4], not_for=tuple(AWKWARD)),
    )
    path = write_toml(spec, tmp_path / "m.toml")
    (again,) = load_toml(path)
    assert again == spec
    assert again.classes == tuple(AWKWARD) and again.domain.not_for == tuple(AWKWARD)


def test_an_artefact_in_an_awkward_folder_reads_back_equal(tmp_path, tiny_onnx):
    folder = tmp_path / 'it\'s "here" \\ ü: #1'
    folder.mkdir()
    spec = ModelSpec(
        name="tiny",
        inputs=(TensorSpec("input__0", "float32", (20,)),),
        outputs=(TensorSpec("softmax", "float32", (2,)),),
        max_batch_size=64,
        engine="onnxruntime",
        artefact_file=tiny_onnx(folder / "tiny.onnx"),
        classes=("qcd", "top"),
    )
    beside = write_toml(spec, folder / "beside.toml")
    above = write_toml(spec, tmp_path / "above.toml")
    assert load_toml(beside)[0].artefact_file == load_toml(above)[0].artefact_file == str(folder / "tiny.onnx")
    assert tomllib.loads(above.read_text())["model"]["tiny"]["artefact"] == f"{folder.name}/tiny.onnx"


def test_builder_params_with_awkward_keys_and_values_are_written_as_given():
    params = {"plain": 1, 'quo"ted': AWKWARD, "dotted.key": {"nested ü": [1.5, float("inf")]}, "b\\s": True}
    table = tomllib.loads(to_toml(_remote(builder="bdt", builder_params=params)))["model"]["elsewhere"]
    assert table["builder_params"] == params


def test_several_models_in_one_file_and_a_name_written_twice(tmp_path, tiny_onnx):
    first, second = _remote(), _remote(name="other", description=AWKWARD[1])
    assert load_toml(write_toml([first, second], tmp_path / "both.toml")) == [first, second]
    with pytest.raises(ConfigError, match="model 'elsewhere' twice"):
        write_toml([first, first], tmp_path / "twice.toml")
