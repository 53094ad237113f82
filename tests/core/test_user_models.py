"""User models on a real embedded server: models declared in a TOML file (HEPINFER_MODELS), an ONNX
network written here and the shipped BDT saved as UBJ under another name, are served like the
built-ins and score the same locally and remotely; a model that only the server has is scored by name
from a fresh process; ``hepinfer models pull`` saves its declaration, with which a dask-awkward graph
is built while no server listens."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hepinfer
from hepinfer import ConfigError, InferenceConfig, Scorer, get_spec
from hepinfer.models.declare import load_toml
from hepinfer.runtime.discovery import spec_from_server

pytestmark = pytest.mark.triton

X = {"input__0": np.random.default_rng(9).normal(size=(300, 20)).astype(np.float32)}
BUILDERS = '''\
import awkward as ak
import numpy as np


def jet_vars(jets, constituents, scale=1.0):
    """input__0 from the jets' "vars" (20 numbers per jet)."""
    flat = ak.flatten(jets, axis=1)
    if ak.backend(flat) == "typetracer":
        ak.typetracer.touch_data(flat.vars)
        return {}
    return {"input__0": (scale * np.asarray(ak.to_regular(flat.vars, axis=1))).astype(np.float32)}
'''
EVENTS = """
import awkward as ak, numpy as np
rng = np.random.default_rng(3)
def jet():
    return {"pt": 1.0, "vars": rng.normal(size=20).tolist()}
events = ak.Array([{"jets": [jet() for _ in range(k)]} for k in (2, 0, 3, 1)])
"""


@pytest.fixture(scope="module")
def declared(tmp_path_factory, tiny_onnx):
    """models.toml declaring ``tiny`` (ONNX, builder from a module of the user's) and ``tinybdt`` (the
    shipped BDT as UBJ), in HEPINFER_MODELS for the module's tests; yields its folder."""
    import xgboost as xgb

    from hepinfer.models import SPECS
    from hepinfer.models.catalogue import shipped

    folder = tmp_path_factory.mktemp("user-models")
    tiny_onnx(folder / "tiny.onnx")
    xgb.Booster(model_file=str(shipped(SPECS["bdt"]))).save_model(str(folder / "tinybdt.ubj"))
    (folder / "hepinfer_user_builders.py").write_text(BUILDERS)
    bdt = get_spec("bdt")
    (folder / "models.toml").write_text(
        textwrap.dedent(
            f"""\
            [model.tiny]
            description = "a linear tagger"
            engine = "onnxruntime"
            artefact = "tiny.onnx"
            max_batch_size = 64
            classes = ["qcd", "top"]
            builder = "hepinfer_user_builders:jet_vars"

            [model.tiny.builder_params]
            scale = 1.0

            [[model.tiny.inputs]]
            name = "input__0"
            dtype = "float32"
            shape = [20]

            [[model.tiny.outputs]]
            name = "softmax"
            dtype = "float32"
            shape = [2]

            [model.tinybdt]
            engine = "xgboost"
            artefact = "tinybdt.ubj"
            max_batch_size = 128
            classes = ["background", "signal"]
            builder = "bdt"

            [[model.tinybdt.inputs]]
            name = "input__0"
            dtype = "float32"
            shape = {list(bdt.inputs[0].shape)}

            [[model.tinybdt.outputs]]
            name = "output__0"
            dtype = "float32"
            shape = [2]
            """
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEPINFER_MODELS", str(folder / "models.toml"))
        mp.syspath_prepend(str(folder))
        yield folder


@pytest.fixture(scope="module")
def user_server(declared):
    with hepinfer.serve(["tiny", "tinybdt"]) as srv:
        yield srv


def _python(code: str, folder, models: str | None = None, timeout: int = 180) -> list[str]:
    """Run ``code`` in a fresh interpreter that sees HEPINFER_MODELS=``models`` (none by default) and
    the user's builder module; return its output lines."""
    env = {k: v for k, v in os.environ.items() if k != "HEPINFER_MODELS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    if models:
        env["HEPINFER_MODELS"] = models
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("model", ["tiny", "tinybdt"])
def test_user_models_score_the_same_locally_and_remotely(user_server, model, protocol):
    assert hepinfer.SPECS.source_of(model).endswith("models.toml")
    url = user_server.url if protocol == "grpc" else user_server.http_url
    local, remote = Scorer(model, mode="local"), Scorer(model, mode="remote", url=url)
    output = get_spec(model).output_names[0]
    assert np.array_equal(local(X)[output], remote(X)[output])
    named = remote.scores(X)
    assert list(named) == list(get_spec(model).classes)
    assert all(np.array_equal(named[c], local.scores(X)[c]) for c in named)


def test_a_model_only_the_server_has_is_scored_by_name(user_server, declared):
    code = f"""
import json, numpy as np, hepinfer
x = {{"input__0": np.random.default_rng(9).normal(size=(300, 20)).astype(np.float32)}}
scorer = hepinfer.Scorer("tinybdt", mode="remote", url={user_server.url!r})
print(hepinfer.SPECS.source_of("tinybdt"))
print(scorer.spec.engine, ",".join(scorer.spec.classes), scorer.spec.max_batch_size)
print(json.dumps(scorer.scores(x)["signal"].tolist()))
try:
    hepinfer.Scorer("tinybdt", mode="auto", url={user_server.url!r})
except hepinfer.ConfigError as err:
    print(err)
"""
    source, spec, scores, refused = _python(code, declared)
    assert source == f"server {user_server.url}"
    assert spec == "remote background,signal 128"
    assert json.loads(scores) == Scorer("tinybdt", mode="local").scores(X)["signal"].tolist()
    assert "declares no artefact: it is scored with mode='remote' only (mode 'auto'" in refused


def test_pull_writes_a_declaration_that_loads_back(user_server, declared, tmp_path):
    out = tmp_path / "pulled.toml"
    builder = "hepinfer_user_builders:jet_vars"
    command = f"""
from hepinfer.cli import main
raise SystemExit(main(["models", "pull", {user_server.url!r}, "tiny", "-o", {str(out)!r}, "--builder", {builder!r}]))
"""
    (line,) = _python(command, declared)
    assert line.startswith(f"wrote the declaration of 'tiny' (from {user_server.url}) to {out}")
    (pulled,) = load_toml(out)
    server = spec_from_server(user_server.url, "tiny")
    assert pulled == dataclasses.replace(server, builder=builder)
    assert pulled.engine == "remote" and pulled.artefact_file is None and pulled.classes == ("qcd", "top")
    assert [(t.name, t.dtype, t.shape) for t in pulled.inputs] == [("input__0", "float32", (20,))]
    assert pulled.max_batch_size == 64 and pulled.source == str(out)
    with pytest.raises(ConfigError, match="declares no artefact"):
        Scorer(pulled, mode="local")


def test_a_dask_graph_for_a_pulled_model_never_asks_the_server(user_server, declared, tmp_path, free_port):
    """With the pulled declaration in HEPINFER_MODELS, the graph is built against a URL where nothing
    listens; computing it then fails with ServerUnavailable, and on the live server it gives the
    scores of the local model."""
    from hepinfer.models.declare import write_toml

    pulled = tmp_path / "pulled.toml"
    spec = spec_from_server(user_server.url, "tiny")
    write_toml(dataclasses.replace(spec, builder="hepinfer_user_builders:jet_vars"), pulled)
    code = (
        EVENTS
        + f"""
import json, dask_awkward as dak, hepinfer
from hepinfer import InferenceConfig
from hepinfer.coffea import JetTagger
jets = dak.from_awkward(events, npartitions=2).jets
print(hepinfer.SPECS.source_of("tiny"))
closed = InferenceConfig(mode="remote", url="grpc://127.0.0.1:{free_port}", retries=0, timeout_s=5)
graph = JetTagger("tiny", closed)(jets, jets)  # no server listens: building must not ask one
print("built", type(graph).__name__)
try:
    graph.compute()
except hepinfer.ServerUnavailable as err:
    print("compute", type(err).__name__, "{free_port}" in str(err))
live = JetTagger("tiny", closed.replace(url={user_server.url!r}))(jets, jets).compute()
print(json.dumps(live.tolist()))
"""
    )
    source, built, failed, live = _python(code, declared, models=str(pulled))
    assert source == str(pulled)
    assert built == "built Array" and failed == "compute ServerUnavailable True"
    namespace: dict = {}
    exec(EVENTS, namespace)
    from hepinfer.coffea import JetTagger

    want = JetTagger("tiny", InferenceConfig(mode="local"))(namespace["events"].jets, namespace["events"].jets)
    assert json.loads(live) == want.tolist()


def test_cli_serve_serves_user_models(declared):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(declared), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepinfer.cli", "serve", "--models", "tiny,tinybdt"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        while not (lines and lines[-1].startswith("grpc://")):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = lines[-1].strip()
        assert any("models  tiny, tinybdt" in line for line in lines), "".join(lines)
        out = Scorer("tiny", mode="remote", url=url)(X)["softmax"]
        assert np.array_equal(out, Scorer("tiny", mode="local")(X)["softmax"])
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "server stopped" in rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
