"""Security against the real server: loopback by default, request headers and bearer tokens that
reach the server and are never shown, TLS with the wrong CA, the repository writer's names, and no
unpickling / evaluation of anything that comes over the network."""

import ast
import logging
import pathlib
import secrets

import numpy as np
import pytest

import hepinfer
from hepinfer import ConfigError, InferenceConfig, Scorer
from hepinfer.models.toy import toy_inputs

PACKAGE = pathlib.Path(hepinfer.__file__).parent


def _address(hexaddr: str) -> str:
    """/proc/net/tcp's address (32-bit words in host byte order) as text; IPv4-mapped IPv6 as IPv4."""
    import ipaddress

    raw = b"".join(bytes.fromhex(hexaddr[i : i + 8])[::-1] for i in range(0, len(hexaddr), 8))
    ip = ipaddress.ip_address(raw)
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(_address(addr))
    return found


@pytest.mark.triton
def test_embedded_server_listens_on_loopback_only(server):
    for kind, port in server.ports.items():
        assert _listening_addresses(port) == {"127.0.0.1"}, kind  # loopback, nothing else


@pytest.mark.triton
def test_an_explicit_host_warns(artefacts):
    with pytest.warns(UserWarning, match="reachable from other machines"):
        srv = hepinfer.serve(["bdt"], host="0.0.0.0")
    try:
        assert _listening_addresses(srv.ports["grpc"]) & {"0.0.0.0", "::"}
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def guarded(artefacts):
    """A real server whose inference endpoints demand headers, as a proxy in front of a shared
    server would: HTTP needs ``authorization: Bearer <token>``, gRPC the metadata
    ``triton-grpc-protocol-x-site-key: <key>`` (Triton's restricted-protocol feature)."""
    token, key = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    extra = (
        f"--http-restricted-api=inference:authorization=Bearer {token}",
        f"--grpc-restricted-protocol=inference:x-site-key={key}",
    )
    with hepinfer.serve(["bdt"], extra_args=extra) as srv:
        yield srv, token, key


@pytest.mark.triton
def test_bearer_token_from_the_environment_reaches_the_server(guarded, monkeypatch, caplog, recwarn):
    srv, token, _ = guarded
    x = toy_inputs("bdt", 8, seed=1)
    want = Scorer("bdt")(x)["output__0"]
    cfg = InferenceConfig(mode="remote", url=srv.http_url, token_env="SITE_TOKEN", retries=0)
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("SITE_TOKEN", raising=False)
    with pytest.raises(hepinfer.HepinferError, match="restricted|authoriz|denied|permission") as refused:
        Scorer("bdt", config=cfg)(x)
    monkeypatch.setenv("SITE_TOKEN", "not-the-token")
    with pytest.raises(hepinfer.HepinferError) as wrong:
        Scorer("bdt", config=cfg)(x)
    monkeypatch.setenv("SITE_TOKEN", token)
    scorer = Scorer("bdt", config=cfg)
    assert np.abs(scorer(x)["output__0"] - want).max() <= 1e-5
    shown = " ".join(
        [str(refused.value), str(wrong.value), repr(scorer), scorer._repr_html_(), repr(cfg), caplog.text]
        + [str(w.message) for w in recwarn]
    )
    assert token not in shown and "not-the-token" not in shown


@pytest.mark.triton
def test_wlcg_and_file_tokens_reach_the_server_and_never_travel(guarded, monkeypatch, tmp_path):
    """A token found by WLCG Bearer Token Discovery ($BEARER_TOKEN_FILE) or in ``token_file`` is read
    where the request is made: the server answers, and the pickled Scorer does not hold it."""
    import pickle

    srv, token, _ = guarded
    x = toy_inputs("bdt", 8, seed=4)
    want = Scorer("bdt")(x)["output__0"]
    (tmp_path / "wlcg").write_text(token + "\n")
    (tmp_path / "own").write_text("not-the-token\n")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(tmp_path / "wlcg"))
    monkeypatch.setenv("HEPINFER_URL", srv.http_url)
    monkeypatch.setenv("HEPINFER_MODE", "remote")
    scorer = pickle.loads(pickle.dumps(Scorer("bdt", retries=0)))  # as a worker receives it
    assert np.abs(scorer(x)["output__0"] - want).max() <= 1e-5
    assert token.encode() not in pickle.dumps(scorer)
    # hepinfer's own token file comes first: the wrong token there is refused, the right one answered
    own = Scorer("bdt", retries=0, token_file=str(tmp_path / "own"))
    with pytest.raises(hepinfer.HepinferError, match=f"came from token_file {tmp_path / 'own'}"):
        own(x)
    (tmp_path / "own").write_text(token)
    assert np.abs(own(x)["output__0"] - want).max() <= 1e-5


@pytest.mark.triton
def test_configured_grpc_headers_reach_the_server_and_are_not_shown(guarded):
    srv, _, key = guarded
    x = toy_inputs("bdt", 8, seed=2)
    base = InferenceConfig(mode="remote", url=srv.url, retries=0, token_env=None)
    with pytest.raises(hepinfer.HepinferError) as refused:
        Scorer("bdt", config=base)(x)
    cfg = base.replace(headers={"triton-grpc-protocol-x-site-key": key})
    assert Scorer("bdt", config=cfg)(x)["output__0"].shape == (8, 2)
    assert key not in repr(cfg) and key not in str(refused.value)


@pytest.mark.triton
@pytest.mark.slow
def test_tls_with_the_wrong_ca_fails_clearly(tmp_path, self_signed, artefacts):
    (tmp_path / "server").mkdir()
    (tmp_path / "other").mkdir()
    cert, key = self_signed(tmp_path / "server")
    other_ca, _ = self_signed(tmp_path / "other")
    x = toy_inputs("bdt", 4, seed=3)
    with hepinfer.serve(["bdt"], tls_cert=cert, tls_key=key) as srv:
        with pytest.raises(hepinfer.ServerUnavailable, match="TLS") as info:
            Scorer("bdt", mode="remote", url=srv.url, root_certificates=str(other_ca), timeout_s=5, retries=0)(x)
        assert str(other_ca) in str(info.value)
        assert Scorer("bdt", mode="remote", url=srv.url, root_certificates=str(cert))(x)["output__0"].shape == (4, 2)


def test_repository_writer_refuses_names_that_escape(tmp_path):
    from hepinfer.models import get_spec
    from hepinfer.models.spec import ModelSpec
    from hepinfer.serving.repository import _inside

    spec = get_spec("bdt")
    for bad in ("../escape", "a/b", "..", "/etc/passwd", ".hidden", "x/../../y"):
        with pytest.raises(ConfigError, match="not allowed"):
            ModelSpec(bad, spec.inputs, spec.outputs, spec.max_batch_size, spec.engine, spec.artefact)
        with pytest.raises(ConfigError):
            _inside(tmp_path / "repo", bad)
    with pytest.raises(ConfigError, match="plain file name"):
        ModelSpec("ok", spec.inputs, spec.outputs, spec.max_batch_size, spec.engine, "../model.onnx")
    assert _inside(tmp_path / "repo", "bdt") == tmp_path / "repo" / "bdt"
    assert not (tmp_path / "escape").exists()


def test_nothing_unpickles_or_evaluates_data():
    """No module of the package calls pickle/marshal loaders, eval/exec, yaml.load or numpy's
    allow_pickle=True: data from a server or a file is only ever decoded as numbers."""
    bad_calls = {"eval", "exec", "loads", "load", "Unpickler"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else ""
                if (isinstance(fn, ast.Name) and name in ("eval", "exec")) or (
                    name in bad_calls and owner in ("pickle", "marshal", "yaml", "dill", "cloudpickle")
                ):
                    offenders.append(f"{path.name}:{node.lineno} {owner}.{name}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        offenders.append(f"{path.name}:{node.lineno} allow_pickle")
    assert offenders == []
