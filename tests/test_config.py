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
