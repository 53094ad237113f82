import pickle

import pytest

from hepinfer import ConfigError, InferenceConfig, Scorer


def test_defaults_are_local_and_plaintext():
    cfg = InferenceConfig()
    assert cfg.mode == "local" and not cfg.use_ssl
    assert InferenceConfig(url="grpcs://h:1").use_ssl
    assert InferenceConfig(url="grpc://h:1", ssl=True).use_ssl


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"mode": "gpu"}, "mode must be one of"),
        ({"url": "ftp://x"}, "unsupported scheme"),
        ({"timeout_s": 0}, "timeouts must be > 0"),
        ({"threads": -1}, "threads"),
        ({"root_certificates": "/nonexistent/ca.pem"}, "root_certificates"),
        ({"max_request_bytes": 10}, "max_request_bytes"),
    ],
)
def test_invalid_settings_are_named(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        InferenceConfig(**kwargs)


def test_from_env():
    cfg = InferenceConfig.from_env(
        {
            "HEPINFER_MODE": "remote",
            "HEPINFER_URL": "http://h:9",
            "HEPINFER_TIMEOUT_S": "2.5",
            "HEPINFER_THREADS": "3",
            "HEPINFER_SSL": "yes",
        },
        threads=4,
    )
    assert (cfg.mode, cfg.url, cfg.timeout_s, cfg.threads, cfg.use_ssl) == ("remote", "http://h:9", 2.5, 4, True)
    with pytest.raises(ConfigError, match="HEPINFER_THREADS"):
        InferenceConfig.from_env({"HEPINFER_THREADS": "many"})


def test_scorer_pickles_and_tokenizes_by_settings():
    a = Scorer("bdt", mode="remote", url="grpc://127.0.0.1:1")
    b = pickle.loads(pickle.dumps(a))
    assert b.config == a.config and b.spec == a.spec
    assert b.__dask_tokenize__() == a.__dask_tokenize__()
    assert Scorer("bdt", mode="remote", url="grpc://127.0.0.1:2").__dask_tokenize__() != a.__dask_tokenize__()
    with pytest.raises(ConfigError):
        Scorer("bdt", mode="sometimes")


def test_bad_input_is_named_before_any_connection():
    import numpy as np

    from hepinfer import InputMismatch

    scorer = Scorer("bdt", mode="remote", url="grpc://127.0.0.1:1", timeout_s=1)  # nothing listens there
    with pytest.raises(InputMismatch, match="'input__0'.*float32, got float64"):
        scorer({"input__0": np.zeros((2, 20))})


def test_environment_steers_every_entry_point_and_explicit_arguments_win(monkeypatch):
    from hepinfer import Session
    from hepinfer.analysis.processor import TopTagProcessor
    from hepinfer.coffea import JetTagger

    monkeypatch.setenv("HEPINFER_MODE", "remote")
    monkeypatch.setenv("HEPINFER_URL", "grpc://triton.site:8001")
    monkeypatch.setenv("HEPINFER_TIMEOUT_S", "7")
    made = {
        "Scorer": Scorer("bdt").config,
        "JetTagger": JetTagger("bdt").config,
        "TopTagProcessor": TopTagProcessor(models=("bdt",)).config,
        "Session": Session().config,
    }
    for name, cfg in made.items():
        assert (cfg.mode, cfg.url, cfg.timeout_s) == ("remote", "grpc://triton.site:8001", 7.0), name
    # an explicit argument beats its variable; the others still come from the environment
    cfg = Scorer("bdt", mode="local", timeout_s=3).config
    assert (cfg.mode, cfg.url, cfg.timeout_s) == ("local", "grpc://triton.site:8001", 3.0)
    assert JetTagger("bdt", mode="auto").config.mode == "auto" and Session(mode="auto").config.mode == "auto"
    # an InferenceConfig given explicitly is taken as it is
    given = InferenceConfig()
    assert Scorer("bdt", config=given).config == given
    assert JetTagger("bdt", given).config == given and TopTagProcessor(models=("bdt",), config=given).config == given
    assert Session(given).config == given


def test_the_environment_is_read_where_the_object_is_built_not_where_it_lands(monkeypatch):
    from hepinfer.coffea import JetTagger

    monkeypatch.setenv("HEPINFER_MODE", "remote")
    tagger, scorer = JetTagger("bdt"), Scorer("bdt")
    monkeypatch.setenv("HEPINFER_MODE", "local")  # a worker's own environment
    assert pickle.loads(pickle.dumps(tagger)).config.mode == "remote"
    assert pickle.loads(pickle.dumps(scorer)).config.mode == "remote"


def test_a_bad_setting_from_the_environment_is_named_by_its_variable(monkeypatch):
    monkeypatch.setenv("HEPINFER_URL", "ftp://x")
    with pytest.raises(ConfigError, match="unsupported scheme.*HEPINFER_URL"):
        Scorer("bdt")
    assert Scorer("bdt", url="grpc://h:1").config.url == "grpc://h:1"  # the explicit URL wins: not read


@pytest.mark.parametrize(
    "env, argv, mode, url",
    [
        ({}, [], "remote", None),  # the command's own default
        ({"HEPINFER_MODE": "local"}, [], "local", None),
        ({"HEPINFER_MODE": "local"}, ["--mode", "auto"], "auto", None),
        ({"HEPINFER_URL": "grpc://h:1"}, [], "remote", "grpc://h:1"),
        ({"HEPINFER_URL": "grpc://h:1"}, ["--url", "grpc://h:2"], "remote", "grpc://h:2"),
    ],
)
def test_hepinfer_run_takes_the_same_order(monkeypatch, tmp_path, env, argv, mode, url):
    import contextlib

    import hepinfer.analysis.job as job
    from hepinfer.cli import main

    for k, v in {**env, "HEPINFER_TIMEOUT_S": "9"}.items():
        monkeypatch.setenv(k, v)
    seen = {}

    class Stop(Exception):
        pass

    def run_job(settings, **kwargs):
        seen["settings"] = settings
        raise Stop

    monkeypatch.setattr(job, "run_job", run_job)
    (tmp_path / "x.root").write_bytes(b"")
    with pytest.raises(Stop):
        main(["run", "--input", str(tmp_path / "x.root"), "--output", str(tmp_path / "s.json"), *argv])
    settings = seen["settings"]
    assert settings.config.mode == mode and settings.config.timeout_s == 9  # one config, read once
    # no URL anywhere: the job starts the embedded server (not in local mode)
    assert settings.embedded_server == (url is None and mode != "local")
    monkeypatch.delenv("HEPINFER_URL", raising=False)  # the settings never read the environment again
    if url is not None:
        with contextlib.ExitStack() as stack:
            assert job._inference_server(settings, stack) == (settings.config, None)
        assert settings.config.url == url


def test_a_batch_job_gets_its_settings_one_way(tmp_path, monkeypatch):
    """What ``hepinfer run`` gives an HTCondor job: its script exports ``HEPINFER_HOME`` and no
    ``HEPINFER_*`` setting; the settings (several URLs, per-model servers, the session wait) travel
    pickled inside the tasks and arrive equal."""
    from hepinfer.analysis.clusters import worker_environment

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    monkeypatch.setenv("HEPINFER_URL", "grpc://not.this:1")
    cfg = InferenceConfig(
        mode="remote",
        url="grpc://a.site:8001,grpcs://b.site:443",
        model_servers={"bdt_nanoaod": {"urls": ["grpc://c.site:8001"], "name": "nano", "version": 2}},
        session_timeout_s=90,
        token_discovery=False,
    )
    assert worker_environment() == {"HEPINFER_HOME": str(tmp_path.resolve())}
    on_worker = pickle.loads(pickle.dumps(cfg))
    assert on_worker == cfg and on_worker.model_server("bdt_nanoaod").version == "2"
