"""Several servers per model, failover in CMSSW SONIC's order and SuperSONIC's session rule, against
real servers: embedded tritonservers (one killed with its process group, kill -9, in the middle of a
run), a real fleet whose HAProxy front refuses new sessions while its saturation flag is up, and a
server that serves a model under another name and version.  The settings' parsing (arguments, the
environment, TOML declarations) is checked without a server.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest

import hepinfer
from hepinfer import ConfigError, InferenceConfig, ModelNotFound, Scorer, ServerUnavailable
from hepinfer.analysis.server_reach import reach_problem
from hepinfer.model_servers import ModelServer
from hepinfer.models import get_spec
from hepinfer.models.declare import load_toml, write_toml
from hepinfer.models.toy import toy_inputs
from hepinfer.runtime.servers import endpoints

# a dead server is given up on after ~0.3 s; no set-aside server is asked again during a test
QUICK = dict(retries=2, retry_initial_ms=50, retry_max_ms=200, retry_total_s=5, reprobe_interval_s=600, timeout_s=30)


def _kill(server) -> None:
    """kill -9 of the server's process group: its guard, tritonserver and the backends' stubs."""
    os.killpg(server.pid, signal.SIGKILL)
    server.process.wait()


# -- settings: arguments, environment, TOML ---------------------------------------------------------


def test_several_urls_in_order_from_a_string_a_list_or_the_environment():
    a, b = "grpc://a.site:8001", "grpc://b.site:8001"
    assert InferenceConfig(url=f"{a}, {b}").url == f"{a},{b}"
    assert InferenceConfig(url=[a, b]) == InferenceConfig(url=f"{a},{b}")
    cfg = InferenceConfig.from_env({"HEPINFER_URL": f"{b},{a}", "HEPINFER_SESSION_TIMEOUT_S": "90"})
    assert [str(u) for u in cfg.urls] == [b, a] and cfg.triton_url.host == "b.site" and cfg.session_timeout_s == 90
    assert [ep.server for ep in endpoints(get_spec("bdt"), cfg)] == [b, a]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"url": "grpc://a:1,,grpc://b:2"}, r"^url: an empty URL"),
        ({"url": "grpc://a:1,ftp://b"}, r"^url: unsupported scheme 'ftp'"),
        ({"url": "grpc://a:1,grpc://a:1"}, r"^url: a URL is listed twice"),
        ({"url": ["grpc://a:1", 7]}, r"^url: expected a URL"),
        ({"session_timeout_s": 0}, r"^session_timeout_s must be > 0"),
        ({"model_servers": ["bdt"]}, r"^model_servers: expected \{model"),
        ({"model_servers": {"bdt": {"url": "grpc://a:1"}}}, r"^model_servers\['bdt'\]\.url: unknown key"),
        ({"model_servers": {"bdt": {"urls": "grpc://"}}}, r"^model_servers\[.bdt.\]\.urls: Triton URL .* has no host"),
        ({"model_servers": {"bdt": {"name": "../x"}}}, r"^model_servers\['bdt'\]\.name: model name '\.\./x'"),
        ({"model_servers": {"bdt": {"version": "v2"}}}, r"^model_servers\['bdt'\]\.version: expected a version"),
        ({"model_servers": {"bdt": {"version": 0}}}, r"^model_servers\['bdt'\]\.version: expected a version"),
        ({"model_servers": {"my-tagger": {}, "my_tagger": {}}}, r"same model for its variables \(MY_TAGGER\)"),
    ],
)
def test_bad_server_settings_are_named(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        InferenceConfig(**kwargs)


def test_per_model_variables_and_bad_ones_named():
    cfg = InferenceConfig.from_env(
        {
            "HEPINFER_URL": "grpc://all.site:8001",
            "HEPINFER_MODEL_BDT_NANOAOD_URL": "grpc://a.site:8001,grpcs://b.site:443",
            "HEPINFER_MODEL_BDT_NANOAOD_NAME": "nanoaod_bdt",
            "HEPINFER_MODEL_BDT_NANOAOD_VERSION": "3",
            "HEPINFER_MODEL_PARTICLENET_VERSION": "2",
        }
    )
    assert cfg.model_server("bdt_nanoaod") == ModelServer(
        ("grpc://a.site:8001", "grpcs://b.site:443"), "nanoaod_bdt", "3"
    )
    eps = endpoints(get_spec("bdt_nanoaod"), cfg)
    assert [(ep.server, ep.model_name, ep.model_version) for ep in eps] == [
        ("grpc://a.site:8001", "nanoaod_bdt", "3"),
        ("grpcs://b.site:443", "nanoaod_bdt", "3"),
    ]
    (pn,) = endpoints(get_spec("particlenet"), cfg)  # the config's URL, the model's own name, version 2
    assert (pn.server, pn.model_name, pn.model_version) == ("grpc://all.site:8001", "particlenet", "2")
    (bdt,) = endpoints(get_spec("bdt"), cfg)
    assert (bdt.model_name, bdt.model_version) == ("bdt", "")
    # an explicit model_servers replaces the environment's
    cfg = InferenceConfig.from_env({"HEPINFER_MODEL_BDT_NAME": "x"}, model_servers={"bdt": {"name": "y"}})
    assert cfg.model_server("bdt").name == "y"
    for env, fragment in [
        ({"HEPINFER_MODEL_BDT_URLS": "grpc://a:1"}, r"^HEPINFER_MODEL_BDT_URLS: not a model's variable"),
        ({"HEPINFER_MODEL_bdt_URL": "grpc://a:1"}, r"^HEPINFER_MODEL_bdt_URL: not a model's variable"),
        ({"HEPINFER_MODEL_BDT_URL": "ftp://a"}, r"^HEPINFER_MODEL_BDT_URL='ftp://a': unsupported scheme"),
        ({"HEPINFER_MODEL_BDT_VERSION": "latest"}, r"^HEPINFER_MODEL_BDT_VERSION='latest': expected a version"),
        ({"HEPINFER_MODEL_BDT_NAME": "a/b"}, r"^HEPINFER_MODEL_BDT_NAME='a/b': model name"),
        ({"HEPINFER_SESSION_TIMEOUT_S": "soon"}, r"^HEPINFER_SESSION_TIMEOUT_S='soon'"),
        ({"HEPINFER_SESSION_TIMEOUT_S": "-1"}, r"session_timeout_s must be > 0 .*HEPINFER_SESSION_TIMEOUT_S"),
        ({"HEPINFER_URL": "grpc://a:1,"}, r"^url: an empty URL .*\(settings read from the environment: HEPINFER_URL"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            InferenceConfig.from_env(env)


def test_names_and_versions_come_from_the_most_specific_place(tmp_path):
    spec = get_spec("bdt")
    declared = dataclasses.replace(spec, extra={"server": ModelServer(("grpc://decl:1",), "bdt_decl", "4")})
    path_url = InferenceConfig(url="triton+grpc://h:1/bdt_path/5")
    (ep,) = endpoints(spec, path_url)  # coffea's form: the URL's path names model and version
    assert (ep.server, ep.model_name, ep.model_version) == ("grpc://h:1", "bdt_path", "5")
    (ep,) = endpoints(declared, path_url)  # the declaration's table before the settings' url
    assert (ep.server, ep.model_name, ep.model_version) == ("grpc://decl:1", "bdt_decl", "4")
    given = path_url.replace(model_servers={"bdt": {"name": "bdt_given"}})
    (ep,) = endpoints(declared, given)  # the settings' entry first, field by field
    assert (ep.server, ep.model_name, ep.model_version) == ("grpc://decl:1", "bdt_given", "4")
    (ep,) = endpoints(spec, given)  # a name given: the URL path's version belongs to the path's model
    assert (ep.model_name, ep.model_version) == ("bdt_given", "")


def test_the_config_stays_frozen_picklable_and_keyed_by_its_servers():
    cfg = InferenceConfig(mode="remote", url="grpc://a:1,grpc://b:2", model_servers={"bdt": {"name": "x"}})
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.url = "grpc://c:3"
    server = cfg.model_server("bdt")
    assert hash(server) == hash(ModelServer(name="x"))
    other = cfg.replace(model_servers={"bdt": {"name": "y"}})
    assert other.cache_key() != cfg.cache_key()
    a, b = Scorer("bdt", config=cfg), Scorer("bdt", config=other)
    assert a.__dask_tokenize__() != b.__dask_tokenize__()
    clone = pickle.loads(pickle.dumps(a))
    assert clone.config == cfg and [str(e) for e in clone.servers.endpoints] == [str(e) for e in a.servers.endpoints]
    assert repr(a) == "Scorer('bdt', mode='remote', url='grpc://a:1,grpc://b:2')"


TOML_MODEL = """
[model.sitetagger]
engine = "remote"
max_batch_size = 64
{server}
[[model.sitetagger.inputs]]
name = "input__0"
dtype = "float32"
shape = [20]

[[model.sitetagger.outputs]]
name = "output__0"
dtype = "float32"
shape = [2]
"""


def test_a_declaration_holds_its_servers_and_bad_tables_are_named(tmp_path):
    path = tmp_path / "site.toml"
    table = '[model.sitetagger.server]\nurls = ["grpc://a.site:8001", "grpc://b.site:8001"]\nname = "t_v2"\nversion = 3'
    path.write_text(TOML_MODEL.format(server=table))
    (spec,) = load_toml(path)
    assert spec.extra["server"] == ModelServer(("grpc://a.site:8001", "grpc://b.site:8001"), "t_v2", "3")
    again = write_toml(spec, tmp_path / "again.toml")
    assert "[model.sitetagger.server]" in again.read_text() and load_toml(again) == [spec]
    eps = endpoints(spec, InferenceConfig(mode="remote"))  # the declaration's servers, not the default URL
    assert [(e.server, e.model_name, e.model_version) for e in eps] == [
        ("grpc://a.site:8001", "t_v2", "3"),
        ("grpc://b.site:8001", "t_v2", "3"),
    ]
    for body, fragment in [
        ('urls = "grpc://a:1"\nport = 1', "server.port: unknown key (known: urls, name, version)"),
        ('urls = ["ftp://a"]', "server.urls: unsupported scheme 'ftp'"),
        ("urls = [1]", "server.urls: expected a URL"),
        ("version = -3", "server.version: expected a version number >= 1, got -3"),
        ("name = 5", "server.name: expected a string, got 5"),
    ]:
        path.write_text(TOML_MODEL.format(server=f"[model.sitetagger.server]\n{body}"))
        with pytest.raises(ConfigError, match=f"^{path}: model 'sitetagger': ") as info:
            load_toml(path)
        assert fragment in str(info.value)


# -- failover against real servers -------------------------------------------------------------------


@pytest.mark.triton
@pytest.mark.slow
def test_first_server_killed_mid_run_the_next_scores_every_row_once(artefacts):
    """A run of many chunks through one Scorer (remote mode, two servers); the first server is killed
    with its process group while the chunks after the first are being scored.  Every row comes back
    once, equal to local inference, and the Scorer counts each row on the server that computed it."""
    chunks = [toy_inputs("bdt", 3000, seed=s) for s in range(12)]
    want = [Scorer("bdt", mode="local")(x)["output__0"] for x in chunks]
    first, second = hepinfer.serve(["bdt"]), hepinfer.serve(["bdt"])
    # many requests per call (~50 rows each, 4 in flight), so the kill can land inside a call
    scorer = Scorer("bdt", mode="remote", url=f"{first.url},{second.url}", max_request_bytes=4096, **QUICK)
    killed = threading.Event()

    def kill_after_the_first_chunk():
        while scorer.stats["rows"][first.url] == 0:
            time.sleep(0.005)
        time.sleep(0.05)
        _kill(first)
        killed.set()

    killer = threading.Thread(target=kill_after_the_first_chunk)
    try:
        killer.start()
        reports = []
        for x, expected in zip(chunks, want):
            out, report = scorer.score_report(x)
            np.testing.assert_array_equal(out["output__0"], expected)
            reports.append(report)
        killer.join(timeout=60)
        # the job's check of the workers' access passes: the model's second server has it ready
        assert reach_problem(scorer.config, [get_spec("bdt")]) is None
    finally:
        first.stop()
        second.stop()
        scorer.close()
    assert killed.is_set() and reports[-1].server == second.url, "the run ended before the kill"
    rows = scorer.stats["rows"]
    assert rows[first.url] > 0 and rows[second.url] > 0 and rows["local"] == 0, rows
    assert rows[first.url] + rows[second.url] == sum(len(x["input__0"]) for x in chunks)  # no row twice
    assert [r.server for r in reports] == sorted((r.server for r in reports), key=[first.url, second.url].index)
    (moved,) = [r for r in reports if r.failovers]  # one call went on to the second server, whole
    assert moved.server == second.url and moved.attempts >= 2 and moved.rows == 3000
    assert scorer.stats["failovers"] == 1 and scorer.stats["remote_calls"] == len(chunks)


@pytest.fixture(scope="module")
def local_run(job_settings, artefacts):
    from hepinfer.analysis.job import run_job

    return run_job(job_settings(config=InferenceConfig(mode="local"), executor="iterative", chunksize=25))


@pytest.mark.triton
@pytest.mark.slow
def test_hepinfer_run_counts_jets_per_server_when_the_first_dies(job_settings, local_run, tmp_path):
    """``hepinfer run`` (the job) in remote mode with two servers; the first killed after the first
    round of chunks.  Histograms and cut flow equal a local run (every jet scored once, with the local
    numbers); the summary and its printout count the jets of each server, as the Scorers do."""
    from hepinfer.analysis.job import run_job
    from hepinfer.analysis.job.summary import format_summary
    from hepinfer.process_scorers import SCORERS

    first, second = hepinfer.serve(["particlenet", "bdt"]), hepinfer.serve(["particlenet", "bdt"])
    urls = f"{first.url},{second.url}"
    timers = []

    def progress(p):
        if not timers:
            timers.append(threading.Timer(0.1, _kill, [first]))
            timers[0].start()

    try:
        settings = job_settings(
            config=InferenceConfig(**QUICK, mode="remote", url=urls), executor="iterative", chunksize=25
        )
        result = run_job(settings, output=tmp_path / "summary.json", progress=progress)
    finally:
        for t in timers:
            t.join()
        first.stop()
        second.stop()
    assert timers, "the run ended before the first server could be killed"
    s = result.summary
    assert s["cutflow"] == local_run.summary["cutflow"] and s["histograms"] == local_run.summary["histograms"]
    for m in ("particlenet", "bdt"):
        inf, by_server = s["inference"][m], s["jets_by_server"][m]
        assert by_server[first.url] > 0 and by_server[second.url] > 0 and by_server["local"] == inf["local_jets"] == 0
        assert sum(by_server.values()) == inf["remote_jets"] == s["fatjets_scored"][m]
        (scorer,) = [sc for key, sc in SCORERS.items() if key[0] == m and sc.config.url == urls]
        assert scorer.stats["rows"] == by_server  # the Scorer counted the same
    printed = format_summary(s)
    assert f"particlenet: {first.url} {s['jets_by_server']['particlenet'][first.url]}, {second.url} " in printed
    assert "jets by server: " in printed and "hepinfer-servers" in result._repr_html_()


def _fleet(missing):
    from hepinfer.operations.fleet import AutoscalerSettings, Fleet

    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install haproxy prometheus)")
    # admission_ratio=None: the autoscaler leaves the saturation flag to the test
    return Fleet(["bdt"], replicas=1, autoscaler=AutoscalerSettings(scale=False, admission_ratio=None))


@pytest.mark.triton
@pytest.mark.slow
def test_a_fleet_refusing_new_sessions_sends_the_client_to_the_next_server(artefacts):
    """The fleet's real HAProxy with its saturation flag raised answers the session call
    (RepositoryIndex) with UNAVAILABLE: after its bounded wait the client scores on the next server,
    sets the fleet aside, and uses it again once it admits sessions (after reprobe_interval_s)."""
    from hepinfer.operations.fleet.processes import missing_binaries

    x = toy_inputs("bdt", 500, seed=21)
    want = Scorer("bdt", mode="local")(x)["output__0"]
    with _fleet(missing_binaries()) as fleet, hepinfer.serve(["bdt"]) as other:
        refused_before = int(fleet.haproxy.stats("grpc")["FRONTEND"]["intercepted"])
        fleet.haproxy.set_saturated(True)
        settings = dict(QUICK, reprobe_interval_s=1.0, session_timeout_s=2.0)
        scorer = Scorer("bdt", mode="remote", url=f"{fleet.url},{other.url}", **settings)
        out, report = scorer.score_report(x)
        np.testing.assert_array_equal(out["output__0"], want)
        assert report.server == other.url and report.failovers == 1 and report.attempts == 1
        refused = int(fleet.haproxy.stats("grpc")["FRONTEND"]["intercepted"]) - refused_before
        assert refused >= 2, refused  # the session call, asked again within the wait, answered by the front
        assert scorer.stats["rows"] == {"local": 0, fleet.url: 0, other.url: 500}
        # only the saturated fleet: remote mode says why, naming the fleet's refusal
        alone = Scorer("bdt", mode="remote", url=fleet.url, **settings)
        with pytest.raises(ServerUnavailable, match="admits no new session") as info:
            alone(x)
        assert f"server {fleet.url}: no session" in str(info.value)
        fleet.haproxy.set_saturated(False)
        time.sleep(settings["reprobe_interval_s"])  # the fleet's time aside is over: asked again
        out, report = scorer.score_report(x)
        np.testing.assert_array_equal(out["output__0"], want)
        assert report.server == fleet.url and scorer.stats["returns"] == 1
        np.testing.assert_array_equal(alone(x)["output__0"], want)
        scorer.close()
        alone.close()


@pytest.mark.triton
@pytest.mark.slow
def test_a_model_served_under_another_name_and_version(artefacts, tmp_path, monkeypatch):
    """A server whose repository (hepinfer's writer) holds the BDT as ``bdt_site`` version 3 only: the
    client reaches it through model_servers, the per-model variables, and a TOML declaration's
    server table, with the local scores; the wrong version is not found, naming it."""
    from hepinfer.models import SPECS
    from hepinfer.models.catalogue import local_artefact

    bdt = get_spec("bdt")
    site = dataclasses.replace(bdt, name="bdt_site", version=3, artefact_file=str(local_artefact(bdt)), source="")
    x = toy_inputs("bdt", 200, seed=8)
    want = Scorer("bdt", mode="local")(x)["output__0"]
    try:
        with hepinfer.serve([site]) as server:
            with pytest.raises(ModelNotFound, match="'bdt'"):  # not there under its own name
                Scorer("bdt", mode="remote", url=server.url, **QUICK)(x)
            given = Scorer(
                "bdt", mode="remote", url=server.url, model_servers={"bdt": {"name": "bdt_site", "version": 3}}
            )
            np.testing.assert_array_equal(given(x)["output__0"], want)
            assert given.stats["rows"][server.url] == 200
            assert reach_problem(given.config, [bdt]) is None  # a job's access check asks for bdt_site 3
            assert (
                reach_problem(given.config.replace(model_servers={}), [bdt])[0]
                == f"finds model bdt not ready at {server.url}"
            )
            monkeypatch.setenv("HEPINFER_MODEL_BDT_NAME", "bdt_site")
            monkeypatch.setenv("HEPINFER_MODEL_BDT_VERSION", "2")
            with pytest.raises(ModelNotFound, match=r"'bdt_site' \(version 2\)"):
                Scorer("bdt", mode="remote", url=server.url, **QUICK)(x)
            monkeypatch.setenv("HEPINFER_MODEL_BDT_VERSION", "3")
            np.testing.assert_array_equal(Scorer("bdt", mode="remote", url=server.url)(x)["output__0"], want)
            declared = tmp_path / "declared.toml"
            declared.write_text(
                TOML_MODEL.format(
                    server=f'[model.sitetagger.server]\nurls = ["{server.url}"]\nname = "bdt_site"\nversion = 3'
                )
            )
            (spec,) = load_toml(declared)
            monkeypatch.delenv("HEPINFER_MODEL_BDT_NAME")
            monkeypatch.delenv("HEPINFER_MODEL_BDT_VERSION")
            from_toml = Scorer(spec, mode="remote")  # no URL given: the declaration's server
            np.testing.assert_array_equal(from_toml(x)["output__0"], want)
            assert from_toml.stats["rows"][server.url] == 200
    finally:
        SPECS.unregister("bdt_site")
