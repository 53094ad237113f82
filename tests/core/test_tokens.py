"""Bearer tokens: hepinfer's own places, then WLCG Bearer Token Discovery, each step in order; a
token found in the environment or a file is read where the request is made and never travels in a
pickle, a repr or a job's environment."""

import os
import pickle

import pytest

from hepinfer import ConfigError, InferenceConfig, Scorer, Session
from hepinfer import tokens as tokens_module
from hepinfer.coffea import JetTagger
from hepinfer.models import get_spec

UID = os.getuid()


@pytest.fixture()
def places(tmp_path, monkeypatch):
    """Every place a token can be, each holding its own token; ``/tmp`` of the discovery is a folder
    of the test.  Returns the config that reads them and the folder."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "xdg").mkdir()
    monkeypatch.setattr(tokens_module, "TMP_DIR", str(tmp_path / "tmp"))
    files = {
        "own": tmp_path / "own-token",
        "bearer_file": tmp_path / "bearer-token",
        "xdg": tmp_path / "xdg" / f"bt_u{UID}",
        "tmp": tmp_path / "tmp" / f"bt_u{UID}",
    }
    for name, path in files.items():
        path.write_text(f"  tok-{name}\n")
    monkeypatch.setenv("HEPINFER_TOKEN", "tok-env")
    monkeypatch.setenv("BEARER_TOKEN", "tok-bearer")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(files["bearer_file"]))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    return InferenceConfig(token_file=str(files["own"])), files


def _sent(config: InferenceConfig) -> str | None:
    return config.request_headers().get("authorization")


def test_each_discovery_step_in_order(places, monkeypatch):
    config, files = places
    assert _sent(config.replace(headers={"authorization": "Bearer tok-code"})) == "Bearer tok-code"
    assert config.replace(headers={"authorization": "Bearer tok-code"}).token_source() == "headers"
    steps = [
        ("Bearer tok-env", "$HEPINFER_TOKEN", lambda: monkeypatch.delenv("HEPINFER_TOKEN")),
        ("Bearer tok-own", f"token_file {files['own']}", lambda: None),
        ("Bearer tok-bearer", "$BEARER_TOKEN", lambda: monkeypatch.setenv("BEARER_TOKEN", "  ")),  # empty: next
        (
            "Bearer tok-bearer_file",
            f"$BEARER_TOKEN_FILE ({files['bearer_file']})",
            lambda: files["bearer_file"].unlink(),
        ),
        ("Bearer tok-xdg", f"$XDG_RUNTIME_DIR ({files['xdg']})", lambda: monkeypatch.delenv("XDG_RUNTIME_DIR")),
        ("Bearer tok-tmp", str(files["tmp"]), lambda: files["tmp"].write_text("\n")),
    ]
    for header, source, remove in steps:
        assert (_sent(config), config.token_source()) == (header, source)
        if source.startswith("token_file"):
            config = config.replace(token_file=None)
        remove()
    assert _sent(config) is None and config.token_source() is None
    assert "none was found" in config.token_note()


def test_own_places_only_without_discovery(places, monkeypatch):
    config, _ = places
    monkeypatch.delenv("HEPINFER_TOKEN")
    quiet = config.replace(token_file=None, token_discovery=False)
    assert _sent(quiet) is None
    assert _sent(quiet.replace(token_env="SITE_TOKEN")) is None
    monkeypatch.setenv("SITE_TOKEN", "tok-site")
    assert _sent(quiet.replace(token_env="SITE_TOKEN")) == "Bearer tok-site"


def test_a_token_file_that_cannot_be_read_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-token"
    with pytest.raises(ConfigError, match=f"token_file {missing}: cannot read"):
        InferenceConfig(token_file=str(missing)).request_headers()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=f"token_file {empty}: the file is empty"):
        InferenceConfig(token_file=str(empty)).request_headers()
    assert f"token_file {missing}" in InferenceConfig(token_file=str(missing)).token_note()


def test_tokens_from_the_environment_or_a_file_never_travel(places, monkeypatch, tmp_path):
    from hepinfer.analysis.clusters import worker_environment

    _, files = places
    monkeypatch.setenv("HEPINFER_TOKEN_FILE", str(files["own"]))
    monkeypatch.setenv("HEPINFER_MODE", "remote")
    config = InferenceConfig.from_env()
    assert config.token_file == str(files["own"]) and _sent(config) == "Bearer tok-env"
    built = [config, Session(), Scorer("bdt"), JetTagger("bdt")]
    shown = [
        repr(config),
        repr(Session()),
        repr(Scorer("bdt")),
        repr(JetTagger("bdt")),
        str(worker_environment()),
    ]
    for blob in [pickle.dumps(obj) for obj in built] + [s.encode() for s in shown]:
        assert b"tok-" not in blob
    # the worker reads the token where the request is made: a refreshed token is the one sent
    on_worker = pickle.loads(pickle.dumps(config))
    monkeypatch.setenv("HEPINFER_TOKEN", "tok-refreshed")
    assert _sent(on_worker) == "Bearer tok-refreshed"
    monkeypatch.delenv("HEPINFER_TOKEN")
    files["own"].write_text("tok-own-refreshed")
    assert _sent(on_worker) == "Bearer tok-own-refreshed"


def test_a_token_given_in_code_is_hidden_but_travels(monkeypatch):
    config = InferenceConfig(mode="remote", headers={"authorization": "Bearer tok-code"})
    assert "tok-code" not in repr(config) and "<hidden>" in repr(config)
    assert pickle.loads(pickle.dumps(config)).request_headers()["authorization"] == "Bearer tok-code"
    monkeypatch.setenv("HEPINFER_TOKEN", "tok-env")  # the token written in code comes first
    assert config.request_headers() == {"authorization": "Bearer tok-code"}


def test_the_header_reaches_the_triton_client(places):
    """Unit level: the headers the Triton runtime hands tritonclient carry the token found at that
    moment (a real server's check: test_security)."""
    import numpy as np

    from hepinfer import ServerError
    from hepinfer.models.toy import toy_inputs
    from hepinfer.runtime.triton import TritonRuntime

    config, _ = places

    class Recorder:  # stands for tritonclient's client: records what each call is given
        def __init__(self):
            self.headers = []

        def is_model_ready(self, *args, headers=None, **kwargs):
            self.headers.append(headers)
            return True

        def infer(self, *args, headers=None, **kwargs):
            self.headers.append(headers)
            raise RuntimeError("recorded")

        def close(self):
            pass

    runtime = TritonRuntime(get_spec("bdt"), config=config.replace(mode="remote", retries=0))
    client = runtime._clients.get("client", Recorder)
    assert runtime.is_ready()
    runtime._meta = {
        "inputs": {"input__0": (np.float32, "FP32", (-1, 20))},
        "outputs": {},
        "max_batch_size": 64,
        "instances": 1,
        "preferred_batch_sizes": (),
    }
    with pytest.raises(ServerError, match="recorded"):
        runtime.infer(toy_inputs("bdt", 2))
    assert [h["authorization"] for h in client.headers] == ["Bearer tok-env", "Bearer tok-env"]
