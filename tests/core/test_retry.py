"""The retry loop's arithmetic (pure code: a clock and a sleep function are passed in so the bounds
can be checked exactly; the behaviour against the real server is in tests/analysis/test_faults.py)."""

import random

import pytest

from hepinfer import InferenceConfig
from hepinfer.retry import Attempts, Backoff, call_with_retries


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept_s = []

    def sleep(self, s):
        self.slept_s.append(s)
        self.now += s

    def __call__(self):
        return self.now


def failing(n_failures, error=ConnectionError):
    calls = {"n": 0}

    def fn():
        calls["n"] += 1
        if calls["n"] <= n_failures:
            raise error(f"failure {calls['n']}")
        return "ok"

    return fn, calls


def test_delays_grow_exponentially_with_jitter_and_a_cap():
    b = Backoff(retries=10, initial_ms=100, max_ms=1000, total_s=100)
    rng = random.Random(1)
    for k in range(10):
        cap = min(1000, 100 * 2**k)
        delays = [b.delay_ms(k, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 4  # jittered, not a constant


def test_retries_until_success_and_counts_attempts():
    clock = Clock()
    fn, calls = failing(3)
    attempts = Attempts()
    dropped = []
    out = call_with_retries(
        fn,
        Backoff(retries=5, initial_ms=100, max_ms=400, total_s=60),
        (ConnectionError,),
        before_retry=dropped.append,
        attempts=attempts,
        sleep=clock.sleep,
        clock=clock,
    )
    assert out == "ok" and calls["n"] == 4 and attempts.count == 4 and attempts.retries == 3
    assert len(dropped) == 3 and all(isinstance(e, ConnectionError) for e in dropped)
    # milliseconds in the settings, seconds at the sleep call: 100, 200, 400 ms caps
    assert [0.05 <= clock.slept_s[0] <= 0.1, 0.1 <= clock.slept_s[1] <= 0.2, 0.2 <= clock.slept_s[2] <= 0.4] == [
        True
    ] * 3


def test_gives_up_after_the_retry_count_with_the_last_error():
    clock = Clock()
    fn, calls = failing(100)
    attempts = Attempts()
    with pytest.raises(ConnectionError, match="failure 3"):
        call_with_retries(
            fn,
            Backoff(retries=2, initial_ms=10, max_ms=10, total_s=60),
            (ConnectionError,),
            attempts=attempts,
            sleep=clock.sleep,
            clock=clock,
        )
    assert calls["n"] == 3 and attempts.count == 3


def test_total_time_bound_stops_before_the_count():
    clock = Clock()
    fn, calls = failing(10_000)
    with pytest.raises(ConnectionError):
        call_with_retries(
            fn,
            Backoff(retries=10_000, initial_ms=100, max_ms=1000, total_s=5),
            (ConnectionError,),
            sleep=clock.sleep,
            clock=clock,
        )
    assert clock.now <= 5.0 and calls["n"] < 20


def test_many_retries_are_a_loop_not_recursion():
    clock = Clock()
    fn, calls = failing(5000)
    out = call_with_retries(
        fn,
        Backoff(retries=6000, initial_ms=1, max_ms=1, total_s=1e9),
        (ConnectionError,),
        sleep=clock.sleep,
        clock=clock,
    )
    assert out == "ok" and calls["n"] == 5001


def test_other_errors_are_not_retried():
    fn, calls = failing(1, error=ValueError)
    with pytest.raises(ValueError):
        call_with_retries(fn, Backoff(), (ConnectionError,), sleep=lambda s: None)
    assert calls["n"] == 1


def test_config_carries_the_backoff_and_validates_it():
    b = InferenceConfig(retries=2, retry_initial_ms=50, retry_max_ms=800, retry_total_s=3).backoff
    assert (b.retries, b.initial_ms, b.max_ms, b.total_s) == (2, 50, 800, 3)
    from hepinfer import ConfigError

    for bad in (
        {"retries": -1},
        {"retry_initial_ms": 0},
        {"retry_initial_ms": 10, "retry_max_ms": 5},
        {"retry_total_s": 0},
        {"reprobe_interval_s": -1},
    ):
        with pytest.raises(ConfigError):
            InferenceConfig(**bad)
    assert InferenceConfig.from_env({"HEPINFER_RETRIES": "0", "HEPINFER_RETRY_MAX_MS": "250"}).retries == 0


def test_headers_and_tokens_are_never_shown_or_pickled(monkeypatch):
    import pickle

    monkeypatch.setenv("HEPINFER_TOKEN", "s3cr3t-token")
    cfg = InferenceConfig(mode="remote", headers={"x-site-key": "hunter2"})
    assert cfg.request_headers() == {"x-site-key": "hunter2", "authorization": "Bearer s3cr3t-token"}
    assert "hunter2" not in repr(cfg) and "s3cr3t" not in repr(cfg) and "x-site-key" in repr(cfg)
    assert b"s3cr3t" not in pickle.dumps(cfg)  # the token is read where the request is made
    assert cfg.cache_key() != cfg.replace(headers={"x-site-key": "other"}).cache_key()
    assert InferenceConfig(token_env=None, token_discovery=False).request_headers() == {}
