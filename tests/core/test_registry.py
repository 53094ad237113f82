"""The model registry and user model declarations, without a server: the registry as a mapping, models
registered in code, declared in TOML files (HEPINFER_MODELS) and by installed entry points (a real
distribution on sys.path, found by importlib.metadata), every declaration error with its message,
named class scores, and repositories of user models."""

import hashlib
import importlib
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hepinfer
from hepinfer import ConfigError, ModelNotFound, ModelSpec, Scorer, TensorSpec, get_spec
from hepinfer.models import SPECS
from hepinfer.models.checks import check_declaration
from hepinfer.models.declare import load_toml, write_toml
from hepinfer.models.registry import Registry

BUILTINS = ("particlenet", "resnet50", "bdt")
X = {"input__0": np.random.default_rng(5).normal(size=(7, 20)).astype(np.float32)}


def declaration(artefact="tiny.onnx", extra="", shape=(20,), dtype="float32") -> str:
    """The TOML declaration of the tiny model (``extra``: lines added after its plain keys)."""
    return "\n".join(
        [
            "[model.tiny]",
            'description = "a linear tagger"',
            'engine = "onnxruntime"',
            f'artefact = "{artefact}"',
            "max_batch_size = 64",
            'classes = ["qcd", "top"]',
            'builder = "bdt"',
            extra,
            "[[model.tiny.inputs]]",
            'name = "input__0"',
            f'dtype = "{dtype}"',
            f"shape = {list(shape)}",
            "[[model.tiny.outputs]]",
            'name = "softmax"',
            'dtype = "float32"',
            "shape = [2]",
        ]
    )


@pytest.fixture()
def folder(tmp_path, tiny_onnx):
    tiny_onnx(tmp_path / "tiny.onnx")
    return tmp_path


@pytest.fixture()
def toml(folder):
    path = folder / "tiny.toml"
    path.write_text(declaration())
    return path


@pytest.fixture()
def registered():
    """Names registered in hepinfer.SPECS by the test, removed afterwards."""
    names = []
    yield names
    for name in names:
        if SPECS.get(name) is not None:
            SPECS.unregister(name)


def _spec(folder, **changes) -> ModelSpec:
    fields = dict(
        name="tiny",
        inputs=(TensorSpec("input__0", "float32", (20,)),),
        outputs=(TensorSpec("softmax", "float32", (2,)),),
        max_batch_size=64,
        engine="onnxruntime",
        artefact_file=folder / "tiny.onnx",
        classes=("qcd", "top"),
    )
    return ModelSpec(**{**fields, **changes})


# -- the registry -----------------------------------------------------------------------------------


def test_registry_is_a_mapping_with_the_builtins_first():
    names = list(SPECS)
    assert names[:3] == list(BUILTINS) and tuple(SPECS)[:3] == BUILTINS
    assert SPECS["bdt"] is get_spec("bdt") and SPECS["bdt"] in list(SPECS.values())
    assert all(SPECS.source_of(n) == "built-in" for n in BUILTINS)
    for name in BUILTINS:  # the built-ins' declarations are what they were, plus their classes
        spec = SPECS[name]
        assert spec.classes == ("qcd", "top") and spec.artefact_file is None and spec.builder is None
    assert "bdt" in SPECS and "transformer" not in SPECS and SPECS.get("transformer") is None


def test_register_in_code(folder, registered):
    spec = hepinfer.register_model(_spec(folder))
    registered.append("tiny")
    assert spec.source == "python" and SPECS.source_of("tiny") == "python" and list(SPECS)[-1] == "tiny"
    assert get_spec("tiny") == spec and spec.artefact == "model.onnx"
    assert hepinfer.register_model(_spec(folder)) == spec  # the same declaration again: nothing happens
    with pytest.raises(ConfigError, match=r"^model 'tiny': the name is already declared \(python\); give it another"):
        hepinfer.register_model(_spec(folder, max_batch_size=8))
    assert hepinfer.register_model(_spec(folder, max_batch_size=8), replace=True).max_batch_size == 8
    with pytest.raises(ConfigError, match=r"model 'bdt': the name is already declared \(built-in\)"):
        hepinfer.register_model(_spec(folder, name="bdt"))
    with pytest.raises(ModelNotFound) as info:
        get_spec("transformer")
    assert "tiny" in str(info.value) and "bdt" in str(info.value)


def test_models_from_the_environment_are_read_lazily(folder, toml, monkeypatch):
    registry = Registry([get_spec(n) for n in BUILTINS])
    monkeypatch.setenv("HEPINFER_MODELS", str(folder))  # a folder: its *.toml files
    assert registry._env_value is None  # nothing read yet
    assert registry["tiny"].source == str(toml) and registry.source_of("tiny") == str(toml)
    assert list(registry) == [*BUILTINS, "tiny"]
    monkeypatch.setenv("HEPINFER_MODELS", "")  # the variable changed: its models go
    assert list(registry) == list(BUILTINS)
    monkeypatch.setenv("HEPINFER_MODELS", str(folder / "missing.toml"))
    with pytest.raises(ConfigError, match=r"HEPINFER_MODELS: .*missing.toml is neither a TOML file nor a folder"):
        list(registry)


def test_models_from_an_installed_entry_point(tmp_path, folder, monkeypatch):
    """A distribution on sys.path with an entry point of the group hepinfer.models, found by
    importlib.metadata (nothing mocked)."""
    site = tmp_path / "site"
    info = site / "fake_taggers-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-taggers\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[hepinfer.models]\ntaggers = fake_taggers:models\nbroken = fake_broken:x\n")
    (site / "fake_taggers.py").write_text(
        textwrap.dedent(
            f"""\
            from hepinfer import ModelSpec, TensorSpec

            def models():
                return [
                    ModelSpec(
                        name="plugin_tagger",
                        inputs=(TensorSpec("input__0", "float32", (20,)),),
                        outputs=(TensorSpec("softmax", "float32", (2,)),),
                        max_batch_size=32,
                        engine="onnxruntime",
                        artefact_file={str(folder / "tiny.onnx")!r},
                        classes=("qcd", "top"),
                    )
                ]
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    registry = Registry([get_spec(n) for n in BUILTINS])
    assert registry["bdt"].source == "built-in" and not registry._entry_points_read  # a known name: not read
    broken = r"entry point broken \(fake-taggers\): cannot be loaded: ModuleNotFoundError"
    with pytest.raises(ConfigError, match=broken):
        registry["plugin_tagger"]
    (site / "fake_broken.py").write_text("x = []\n")  # an entry point that declares nothing is fine
    importlib.invalidate_caches()
    spec = registry["plugin_tagger"]
    assert spec.source == "entry point taggers (fake-taggers)" and list(registry)[-1] == "plugin_tagger"
    assert Scorer(spec, mode="local").scores(X)["top"].shape == (7,)


# -- TOML declarations ------------------------------------------------------------------------------


def test_toml_declaration_round_trip(toml, tmp_path):
    (spec,) = load_toml(toml)
    assert spec.name == "tiny" and spec.engine == "onnxruntime" and spec.builder == "bdt"
    assert spec.artefact_file == str(toml.parent / "tiny.onnx") and spec.source == str(toml)
    assert spec.inputs == (TensorSpec("input__0", "float32", (20,)),) and spec.classes == ("qcd", "top")
    digest = hashlib.sha256((toml.parent / "tiny.onnx").read_bytes()).hexdigest()
    full = _spec(
        toml.parent,
        sha256=digest,
        description='quotes " and \\ and ünïcode',
        builder="bdt",
        version=2,
        builder_params={},
    )
    again = write_toml(full, toml.parent / "again.toml")
    assert load_toml(again) == [full]
    assert 'artefact = "tiny.onnx"' in again.read_text()  # relative to the file, which sits beside it


def test_a_model_declared_in_toml_scores_locally_with_named_classes(toml, monkeypatch):
    monkeypatch.setenv("HEPINFER_MODELS", str(toml))
    scorer = Scorer("tiny", mode="local")
    out = scorer(X)["softmax"]
    scores = scorer.scores(X)
    assert list(scores) == ["qcd", "top"] and np.array_equal(scores["top"], out[:, 1])
    assert np.allclose(scores["qcd"] + scores["top"], 1.0, atol=1e-6)
    monkeypatch.delenv("HEPINFER_MODELS")
    assert "tiny" not in SPECS


def _error(tmp_path, text: str, name="bad.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    return str(info.value)


def test_toml_errors_name_the_file_the_model_and_the_key(folder):
    p = folder / "bad.toml"
    assert _error(folder, declaration(dtype="float31")) == (
        f"{p}: model 'tiny': inputs[0].dtype 'float31' is not one of "
        "bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float16, float32, float64, object, bfloat16"
    )
    assert _error(folder, declaration(extra="colour = 3")) == (
        f"{p}: model 'tiny': colour: unknown key (known: description, engine, artefact, sha256, max_batch_size, "
        "version, classes, builder, builder_params, domain, server, inputs, outputs)"
    )
    assert _error(folder, declaration().replace('artefact = "tiny.onnx"\n', "")) == (
        f"{p}: model 'tiny': artefact: missing "
        "(engine 'onnxruntime' runs a model file: its path, relative to this file)"
    )
    assert _error(folder, declaration().replace("shape = [20]", 'shape = ["twenty"]')) == (
        f"{p}: model 'tiny': inputs[0].shape: expected a list of lengths per row (-1 = any length), got ['twenty']"
    )
    assert _error(folder, "[model.tiny\n").startswith(f"{p}: not valid TOML: ")
    assert _error(folder, "title = 'x'\n") == (f"{p}: unknown top-level key 'title' (models are [model.<name>] tables)")


# -- declaration errors ----------------------------------------------------------------------------


def test_declaration_errors_name_the_model_and_the_field(folder):
    p = folder / "bad.toml"
    onnx_file = folder / "tiny.onnx"
    digest = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    wrong = "0" * 64
    cases = {
        "engine": (
            declaration().replace('engine = "onnxruntime"', 'engine = "tensorflow"'),
            "engine 'tensorflow' is not one of onnxruntime, xgboost, remote",
        ),
        "artefact": (declaration(artefact="gone.onnx"), f"artefact: file {folder / 'gone.onnx'} does not exist"),
        "sha256": (
            declaration(extra=f'sha256 = "{wrong}"'),
            f"sha256: file {onnx_file} has sha256 {digest}, the declaration says {wrong}",
        ),
        "shape": (
            declaration(shape=(19,)),
            "inputs[0].shape [19] does not fit the ONNX input 'input__0' of shape ['batch', 20] "
            "(its first axis is the batch)",
        ),
        "dtype": (
            declaration(dtype="float64"),
            "inputs[0].dtype float64 does not match the ONNX file's tensor(float) (float32)",
        ),
        "builder": (
            declaration().replace('builder = "bdt"', 'builder = "transformer"'),
            "builder 'transformer' is not one of particlenet, resnet50, bdt, ",  # and any later built-in
        ),
        "module builder": (
            declaration().replace('builder = "bdt"', 'builder = "no_such_package.features:build"'),
            "builder 'no_such_package.features:build' cannot be imported: No module named 'no_such_package'",
        ),
        "builder_params": (
            declaration(extra="[model.tiny.builder_params]\nradius = 0.8\n"),
            "builder_params.radius: builder 'bdt' takes no parameter 'radius' (its parameters: none)",
        ),
        "classes": (
            declaration().replace('classes = ["qcd", "top"]', 'classes = ["qcd", "w", "top"]'),
            "classes: 3 names (qcd, w, top) but the first output 'softmax' has 2 columns (shape [2])",
        ),
    }
    for field, (text, message) in cases.items():
        got = _error(folder, text)
        assert got.startswith(f"{p}: model 'tiny': {message}"), (field, got)
    # the same checks for a declaration in code, which names no file
    with pytest.raises(ConfigError, match=re.escape("model 'tiny': classes: 1 names (top) but the first output")):
        hepinfer.register_model(_spec(folder, classes=("top",)))
    with pytest.raises(ConfigError, match=re.escape("model 'tiny': artefact: xgboost models are read from .json or")):
        check_declaration(_spec(folder, engine="xgboost"))
    assert check_declaration(_spec(folder, sha256=digest)).sha256 == digest


def test_the_checksum_is_checked_before_loading(folder, tiny_onnx):
    spec = _spec(folder, sha256=hashlib.sha256((folder / "tiny.onnx").read_bytes()).hexdigest())
    assert Scorer(check_declaration(spec), mode="local")(X)["softmax"].shape == (7, 2)
    tiny_onnx(folder / "tiny.onnx", seed=1)  # the file changed after it was declared
    with pytest.raises(ConfigError, match=r"model 'tiny': sha256: file .*tiny.onnx has sha256 [0-9a-f]{64}, the decl"):
        Scorer(spec, mode="local")(X)


# -- named scores, remote-only models -----------------------------------------------------------------


def test_jet_tagger_returns_the_named_class(folder):
    ak = pytest.importorskip("awkward")
    from hepinfer.coffea import JetTagger, class_column

    assert class_column(get_spec("bdt"), None) == 1 and class_column(get_spec("bdt"), "qcd") == 0
    with pytest.raises(ConfigError, match=r"model 'bdt' has no class 'w'; its classes: qcd, top"):
        JetTagger("bdt", score="w")
    Path(folder / "hepinfer_test_builders.py").write_text(
        "import awkward as ak, numpy as np\n"
        "def jet_vars(jets, constituents, scale=1.0):\n"
        "    flat = ak.flatten(jets, axis=1)\n"
        "    return {'input__0': (scale * np.asarray(ak.to_regular(flat.vars, axis=1))).astype(np.float32)}\n"
    )
    sys.path.insert(0, str(folder))
    try:
        spec = _spec(folder, builder="hepinfer_test_builders:jet_vars", builder_params={"scale": 1.0})
        spec = check_declaration(spec)
        jets = ak.Array([{"jets": [{"pt": 1.0, "vars": list(x)} for x in X["input__0"][:3]]}, {"jets": []}]).jets
        tags = {s: JetTagger(spec, score=s)(jets, jets) for s in ("qcd", "top")}
    finally:
        sys.path.remove(str(folder))
    assert ak.to_list(ak.num(tags["top"], axis=1)) == [3, 0]
    want = Scorer(spec).scores({"input__0": X["input__0"][:3]})
    assert np.array_equal(ak.to_numpy(ak.flatten(tags["top"])), want["top"])
    assert np.array_equal(ak.to_numpy(ak.flatten(tags["qcd"])), want["qcd"])


def test_a_model_only_a_server_has_is_scored_remotely_only(folder, server_only_spec):
    spec = server_only_spec
    for mode in ("local", "auto"):
        with pytest.raises(ConfigError, match=rf"model 'elsewhere' \(server .*\) declares no artefact.*mode {mode!r}"):
            Scorer(spec, mode=mode)
    with pytest.raises(ConfigError, match="declares no classes"):
        Scorer(spec, mode="remote").scores(X)
    with pytest.raises(ModelNotFound, match="only a server has is scored with mode='remote'"):
        Scorer("elsewhere", mode="auto")
    from hepinfer.serving.repository import RepositoryOptions

    with pytest.raises(ConfigError, match=r"model 'elsewhere' .* has no artefact \(only a server has it\)"):
        RepositoryOptions(models=(spec,))


# -- repositories and the command line ----------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_user_models_in_a_repository(folder, registered, flavour, tmp_path):
    import xgboost as xgb

    from hepinfer.models.catalogue import artefact_path, shipped
    from hepinfer.serving.repository import RepositoryOptions, read_config, write_repository

    xgb.Booster(model_file=str(shipped(SPECS["bdt"]))).save_model(str(folder / "other.ubj"))
    hepinfer.register_model(_spec(folder))
    registered += ["tiny", "tinybdt"]
    ubj = ModelSpec(
        name="tinybdt",
        inputs=get_spec("bdt").inputs,
        outputs=get_spec("bdt").outputs,
        max_batch_size=128,
        engine="xgboost",
        artefact_file=folder / "other.ubj",
        classes=("background", "signal"),
    )
    out = write_repository(
        tmp_path / "repo", RepositoryOptions(flavour=flavour, models=("tiny", ubj), link_artefacts=False)
    )
    assert SPECS.source_of("tinybdt") == "python" and artefact_path(SPECS["tinybdt"]) == folder / "other.ubj"
    tiny, booster = read_config(out / "tiny" / "config.pbtxt"), read_config(out / "tinybdt" / "config.pbtxt")
    assert tiny.output[0].label_filename == "labels.txt" and tiny.max_batch_size == 64
    assert (out / "tinybdt" / "labels.txt").read_text() == "background\nsignal\n"
    assert (out / "tiny" / "1" / "model.onnx").read_bytes() == (folder / "tiny.onnx").read_bytes()
    assert (out / "tinybdt" / "1" / "xgboost.ubj").is_file()
    if flavour == "production":
        assert booster.backend == "fil" and booster.parameters["model_type"].string_value == "xgboost_ubj"
        assert tiny.platform == "onnxruntime_onnx" and tiny.default_model_filename == "model.onnx"
    else:
        assert booster.parameters["engine"].string_value == "xgboost"


def test_models_list_names_every_source(toml, monkeypatch, capsys):
    from hepinfer.cli import main

    monkeypatch.setenv("HEPINFER_MODELS", str(toml))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "bdt [built-in]: " in out and f"tiny [{toml}]: a linear tagger" in out
    assert "classes: qcd, top; builder: bdt" in out and f"artefact {toml.parent / 'tiny.onnx'}" in out
    import logging

    logging.getLogger("hepinfer").handlers[:] = [
        h for h in logging.getLogger("hepinfer").handlers if h.get_name() != "hepinfer-console"
    ]
