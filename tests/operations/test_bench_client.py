"""`hepinfer bench client` and the null engine it measures against: the engine answers zeros of the
declared shapes, the embedded server serves it without artefacts, and the quick study writes its
per-step, fit and worker rows.  (Figures are printed by the bench; no test asserts a speed.)"""

import csv
import json

import numpy as np
import pytest

from hepinfer import ConfigError
from hepinfer.cli import main
from hepinfer.operations.bench.client import STEPS, WORKER, fit
from hepinfer.runtime.engines import load_engine
from hepinfer.serving.repository import RepositoryOptions, read_config, write_repository


def test_null_engine_answers_zeros_of_the_output_shapes():
    engine = load_engine("null", "no-such-file", ["x", "y"], ["a", "b"], output_shapes={"a": [2], "b": [3, -1]})
    out = engine.run({"x": np.ones((5, 7), np.float32), "y": np.ones((5, 1), np.int64)})
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {
        "a": ((5, 2), np.float32),
        "b": ((5, 3, 1), np.float32),
    }
    assert not any(v.any() for v in out.values())
    assert engine.run({"x": np.ones((0, 7), np.float32)})["a"].shape == (0, 2)
    with pytest.raises(ValueError, match="missing.*'b'"):
        load_engine("null", "", ["x"], ["a", "b"], output_shapes={"a": [2]})


def test_null_repository_needs_no_artefact(tmp_path, monkeypatch):
    """Engine null writes model.py and the engine module, no artefact, and declares the output shapes."""
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path / "empty-home"))  # no artefact built there
    repo = write_repository(tmp_path / "repo", RepositoryOptions(models=("particlenet", "bdt"), engine="null"))
    for model, output in (("particlenet", "softmax"), ("bdt", "output__0")):
        version = repo / model / "1"
        assert sorted(p.name for p in version.iterdir()) == ["hepinfer_engines.py", "model.py"]
        params = {k: v.string_value for k, v in read_config(repo / model / "config.pbtxt").parameters.items()}
        assert params["engine"] == "null" and json.loads(params["output_shapes"]) == {output: [2]}
    with pytest.raises(ConfigError, match="embedded server only"):
        RepositoryOptions(flavour="production", models=("bdt",), engine="null")


def test_fit_recovers_a_line_and_never_goes_negative():
    fixed, per_jet = fit([(n, 0.004 + 20e-6 * n) for n in (100, 1000, 10_000)])
    assert fixed == pytest.approx(0.004, rel=1e-6) and per_jet == pytest.approx(20e-6, rel=1e-6)
    fixed, per_jet = fit([(100, 0.003), (1000, 0.0031), (10_000, 0.0029)])  # a fixed cost alone
    assert per_jet == 0.0 and fixed == pytest.approx(0.003, rel=0.05)
    fixed, per_jet = fit([(100, 0.0001), (1000, 0.0011), (10_000, 0.0098)])  # per-jet alone
    assert fixed == 0.0 and per_jet == pytest.approx(1e-6, rel=0.05)


@pytest.mark.triton
def test_null_server_answers_zeros_with_the_spec_shapes():
    """The real tritonserver, every model on engine null: zeros of each model's output shape, for a
    batch the client splits at ParticleNet's max batch size (256)."""
    import hepinfer
    from hepinfer.models import get_spec
    from hepinfer.models.toy import toy_inputs
    from hepinfer.runtime.discovery import served_engine
    from hepinfer.runtime.triton import TritonRuntime

    with hepinfer.serve(["particlenet", "bdt"], engine="null") as server:
        for model, rows in (("particlenet", 300), ("bdt", 50)):
            spec = get_spec(model)
            with TritonRuntime(spec, server.url) as runtime:
                out = runtime.infer(toy_inputs(model, rows, seed=1))
            assert set(out) == set(spec.output_names)
            for t in spec.outputs:
                assert out[t.name].shape == (rows, *t.shape) and out[t.name].dtype == np.float32
                assert not out[t.name].any()
            assert served_engine(server.url, model).engine == "null"


@pytest.mark.triton
@pytest.mark.slow
def test_quick_client_study(tmp_path, capsys):
    assert main(["bench", "client", "--quick", "--gpu-rate", "30000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {"client.csv", "client.md", "client.png"}
    assert (tmp_path / "client.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "client.md").read_text().startswith("## One worker feeding a GPU server")
    with open(tmp_path / "client.csv") as f:
        rows = list(csv.DictReader(f))

    calls = [r for r in rows if r["jets"] != "fit" and r["step"] != WORKER]
    by_size: dict = {}
    for r in calls:
        by_size.setdefault(int(r["events"]), []).append(r["step"])
        assert float(r["ms_per_call"]) > 0 and float(r["us_per_jet"]) > 0
        assert float(r["us_per_jet"]) == pytest.approx(1e3 * float(r["ms_per_call"]) / int(r["jets"]), rel=1e-6)
    assert len(by_size) == 3 and all(steps == list(STEPS) for steps in by_size.values())
    sizes = sorted({int(r["jets"]) for r in calls})
    assert sizes[0] >= 100 and sizes[1] >= 1000 and sizes[2] >= 10_000
    large = {r["step"]: r["target"] for r in calls if int(r["jets"]) == sizes[2]}
    assert large["particles"].startswith("<= 20 µs/jet: ") and large["read"] == ""

    fits = {r["step"]: r for r in rows if r["jets"] == "fit"}
    assert list(fits) == list(STEPS)
    assert all(float(r["fixed_ms"]) >= 0 and float(r["us_per_jet"]) >= 0 for r in fits.values())
    assert fits["particles"]["target"].startswith("<= 5 ms + 20 µs/jet: ")
    assert fits["image"]["target"].startswith("<= 10 µs/jet: ") and fits["fill"]["target"] == ""

    (worker,) = [r for r in rows if r["step"] == WORKER]
    jets_per_s = float(worker["jets_per_s"])
    assert int(worker["jets"]) >= 10_000 and int(worker["events"]) > 0 and jets_per_s > 0
    events_per_jet = int(worker["events"]) / int(worker["jets"])
    assert float(worker["events_per_s"]) == pytest.approx(jets_per_s * events_per_jet, rel=1e-6)
    assert float(worker["cores_per_gpu"]) == pytest.approx(30_000 / jets_per_s, rel=1e-3)
    assert f"one GPU at 30,000 jets/s (--gpu-rate) needs 30,000 / {jets_per_s:,.0f}" in out
    assert "steps of a ParticleNet jet at" in out
