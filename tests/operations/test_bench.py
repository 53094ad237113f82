"""`hepinfer bench`: every study at its smallest against real embedded servers (peer against
coffea.ml_tools, both giving the same scores), and the harness on a declared toy study.
(Figures are printed by the bench; no test asserts a speed.)"""

import csv

import pytest

from hepinfer.cli import main
from hepinfer.figures import bar_chart
from hepinfer.models import SPECS
from hepinfer.operations.bench import STUDIES, run
from hepinfer.operations.bench.study import Option, Point, Study


def files_in(path):
    return {p.name for p in path.iterdir()}


# -- the harness, on a study declared here -----------------------------------------------------
def _toy_study(calls):
    """A study without a server: one row per ``n``; fails when any row's value is above ``limit``."""

    def measure(run_, point):
        calls.append(dict(vars(run_.params)))
        return {"value": point.row["n"] * run_.params.scale}

    return Study(
        name="toy",
        help="a toy",
        columns=("n", "value"),
        params=dict(ns=(1, 2, 3), scale=1.0, limit=100.0),
        quick=dict(ns=(1,), scale=2.0),
        options={"scale": Option("--toy-scale", "multiplier", type=float), "limit": Option("--toy-limit", type=float)},
        points=lambda p: [Point({"n": n}) for n in p.ns],
        measure=measure,
        output="toy_{scale:g}",
        title="Toy x {scale:g}",
        plot=lambda rows, path, p: bar_chart(rows, path, lambda r: str(r["n"]), value="value"),
        summary=lambda rows, p: [f"toy total: {sum(r['value'] for r in rows):g}"],
        check=lambda rows, p: f"value above {p.limit:g}" if any(r["value"] > p.limit for r in rows) else None,
    )


@pytest.mark.quick
def test_declared_study_runs_through_the_command(tmp_path, capsys, monkeypatch):
    """A study registered in STUDIES is a `hepinfer bench` choice with its own options, no CLI edit:
    quick preset over defaults, options over the quick preset, the check decides the exit code."""
    calls = []
    monkeypatch.setitem(STUDIES, "toy", _toy_study(calls))
    assert main(["bench", "toy", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| n | value |" in out and "| 1 | 2 |" in out and "toy total: 2" in out
    assert files_in(tmp_path) == {"toy_2.csv", "toy_2.md", "toy_2.png"}
    assert (tmp_path / "toy_2.md").read_text().startswith("## Toy x 2\n")
    assert (tmp_path / "toy_2.png").read_bytes().startswith(b"\x89PNG")
    with open(tmp_path / "toy_2.csv") as f:
        assert list(csv.DictReader(f)) == [{"n": "1", "value": "2.0"}]

    assert main(["bench", "toy", "--quick", "--toy-scale", "10", "--toy-limit", "5", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "value above 5" in captured.err and "toy total: 10" in captured.out
    assert calls[-1]["scale"] == 10.0 and calls[-1]["ns"] == (1,)

    assert main(["bench", "toy", "--clients", "3", "--out", str(tmp_path / "full")]) == 0
    assert "--clients does not apply" in capsys.readouterr().err
    assert calls[-1]["ns"] == (1, 2, 3) and calls[-1]["scale"] == 1.0
    assert files_in(tmp_path / "full") == {"toy_1.csv", "toy_1.md", "toy_1.png"}


@pytest.mark.quick
def test_every_study_is_declared():
    assert list(STUDIES) == [
        "models",
        "configs",
        "workers",
        "peer",
        "perf-analyzer",
        "shm",
        "load",
        "gpu",
        "client",
        "fleet",
    ]
    for s in STUDIES.values():
        assert set(s.quick) <= set(s.params) and set(s.options) <= set(s.params), s.name
        assert set(s.table) <= set(s.columns) | {"verdict"}, s.name


@pytest.mark.quick
def test_unknown_parameter_is_refused():
    from hepinfer import ConfigError

    with pytest.raises(ConfigError, match="unknown parameter"):
        run("models", model="bdt")


# -- the studies -------------------------------------------------------------------------------
@pytest.mark.triton
@pytest.mark.slow
def test_peer_quick(generated, tmp_path):
    """The quick preset: chunks of 60 jets of the model's domain, coffea at its default batch (the max
    batch size: the embedded server declares no preferred one) and at the batches swept (16)."""
    files = [generated["ttbar"], generated["qcd"]]
    (row,) = run("peer", quick=True, model="particlenet", files=files, instances=1, out_dir=tmp_path)
    assert row["chunks"] == 2 and row["jets"] >= 2 * 60 and row["jets_per_chunk"] >= 60 and row["events"] > 0
    assert row["max_abs_diff"] <= 1e-5  # the same scores through both clients, at every batch
    assert row["coffea_default_batch"] == SPECS["particlenet"].max_batch_size and row["coffea_best_batch"] == 16
    assert row["coffea_sweep"].startswith("16: ") and row["hepinfer_requests_per_chunk"] >= 1
    assert row["hepinfer_s"] > 0 and row["ratio_default"] > 0 and row["ratio_best"] > 0
    with open(tmp_path / "peer.csv") as f:
        written = next(csv.DictReader(f))
    assert int(written["jets"]) == row["jets"]
    assert float(written["ratio_best"]) == pytest.approx(row["ratio_best"], rel=1e-3)
    md = (tmp_path / "peer.md").read_text()
    assert "coffea.ml_tools events/s (default)" in md and "coffea.ml_tools events/s (best)" in md
    assert (tmp_path / "peer.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.triton
@pytest.mark.slow
def test_bench_command(generated, tmp_path, capsys):
    argv = ["bench", "peer", "--quick", "--input", str(generated["ttbar"]), "--jets-per-chunk", "50"]
    assert main([*argv, "--coffea-batches", "32", "--server-instances", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    default = SPECS["particlenet"].max_batch_size  # what coffea reads: the server declares no preferred size
    assert f"at its default batch ({default}) =" in out and "at its best batch (32) =" in out and "goal >= 1.5" in out
    assert (tmp_path / "peer.csv").is_file()


@pytest.mark.triton
@pytest.mark.slow
def test_models_study_quick(tmp_path, artefacts):
    from hepinfer.operations.bench.models import ceiling

    rows = run("models", models=("bdt",), batches=(1, 8), concurrency=(1, 2), duration_s=0.2, out_dir=tmp_path)
    paths = {(r["path"].split()[0], r["batch"], r["concurrency"]) for r in rows}
    assert paths == {
        ("local", 1, 1),
        ("local", 8, 1),
        ("triton", 1, 1),
        ("triton", 1, 2),
        ("triton", 8, 1),
        ("triton", 8, 2),
    }
    assert all(r["calls"] > 0 and r["rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert set(ceiling(rows)) == {"bdt"}
    assert files_in(tmp_path) == {"models.csv", "models.md", "models.png"}
    with open(tmp_path / "models.csv") as f:
        assert next(csv.reader(f)) == list(STUDIES["models"].columns)


@pytest.mark.triton
@pytest.mark.slow
def test_configs_study_quick(tmp_path, artefacts):
    from hepinfer.operations.bench.configs import CONFIGS, batching_gain

    rows = run("configs", models=("bdt",), batch=2, concurrency=4, duration_s=0.3, out_dir=tmp_path)
    assert [r["config"] for r in rows] == list(CONFIGS) and all(r["calls"] > 0 for r in rows)
    assert set(batching_gain(rows)) == {"bdt"}
    assert "dynamic batching" in (tmp_path / "configs.md").read_text()
    assert (tmp_path / "configs.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.triton
@pytest.mark.slow
def test_workers_study_quick(generated, tmp_path):
    rows = run("workers", files=[generated["ttbar"]], workers=(1,), models=("bdt",), chunksize=75, out_dir=tmp_path)
    assert [(r["workers"], r["mode"]) for r in rows] == [(1, "local"), (1, "remote")]
    assert all(r["events"] == 150 and r["events_per_s"] > 0 for r in rows)
    local, remote = rows
    assert local["requests"] == 0 and remote["requests"] >= 2  # the metrics see only the remote run's requests
    assert (tmp_path / "workers.png").is_file() and (tmp_path / "workers.csv").is_file()


@pytest.mark.triton
@pytest.mark.slow
def test_perf_analyzer_study_quick(tmp_path, artefacts, monkeypatch):
    """Triton's own perf_analyzer (from the tritonclient 2.51.0 wheel, libraries from the server
    environment) measures the same server as hepinfer's harness; the quick study's fixed count of
    requests reports on a busy machine, and a point that never settles is reported as unstable."""
    from hepinfer.operations.bench import perf_analyzer as pa

    assert pa.ensure_perf_analyzer().is_file()
    rows = run("perf-analyzer", quick=True, batches=(16,), duration_s=0.5, out_dir=tmp_path)
    assert [(r["tool"], r.get("measurement")) for r in rows] == [("perf_analyzer", "fixed count"), ("hepinfer", None)]
    assert all(r["rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in rows)
    assert set(pa.agreement(rows)) == {("bdt", 16, 1)}
    assert files_in(tmp_path) == {"perf_analyzer.csv", "perf_analyzer.md", "perf_analyzer.png"}
    # a tolerance of 0 % is never met: the windows do not settle, the point is measured on a fixed
    # count and marked unstable (a real perf_analyzer run; only the tolerance is changed)
    monkeypatch.setattr(pa, "STABILITY_PERCENT", 0)
    rows = run("perf-analyzer", models=("bdt",), batches=(16,), concurrency=(1,), duration_s=0.2)
    assert rows[0]["measurement"] == "unstable" and rows[0]["rows_per_s"] > 0 and rows[0]["stability_pct"] is None
    assert "did not settle on bdt b16 c1" in pa.STUDY.summary(rows, None)[-1]


@pytest.mark.triton
@pytest.mark.slow
def test_shm_study_quick(tmp_path, artefacts):
    """System shared memory gives the same outputs as gRPC (checked inside) and leaves no region."""
    import os

    from hepinfer.operations.bench.shm import gains

    rows = run("shm", models=("bdt",), duration_s=0.3, out_dir=tmp_path)
    assert [r["transport"] for r in rows] == ["grpc", "system shm"] and set(gains(rows)) == {"bdt"}
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"hepinfer-{os.getpid()}-")]
    assert files_in(tmp_path) == {"shm.csv", "shm.md", "shm.png"}


@pytest.mark.triton
@pytest.mark.slow
def test_load_study_quick(tmp_path, artefacts):
    from hepinfer import ConfigError

    (row,) = run("load", model="bdt", batch=8, clients=2, seconds=1.0, out_dir=tmp_path)
    assert row["errors"] == 0 and row["requests"] > 10 and row["p99_ms"] >= row["p50_ms"] > 0
    assert row["server_rss_mb_before"] > 50 and row["server_rss_mb_peak"] >= row["server_rss_mb_before"]
    assert files_in(tmp_path) == {"load_bdt.csv", "load_bdt.md", "load_bdt.png"}
    with pytest.raises(ConfigError, match="loopback"):
        run("load", url="grpc://192.0.2.1:8001", seconds=1)
    with pytest.raises(ConfigError, match="clients"):
        run("load", clients=1000, seconds=1)


@pytest.mark.slow
def test_load_exits_1_on_failed_requests(tmp_path, capsys):
    """Every request of a client against a loopback port where no server listens fails: counted
    (retries=0), reported, and the command exits 1."""
    argv = ["bench", "load", "--model", "bdt", "--url", "grpc://127.0.0.1:1", "--clients", "1", "--seconds", "0.5"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "errors; first: ServerUnavailable" in captured.err
    with open(tmp_path / "load_bdt.csv") as f:
        row = next(csv.DictReader(f))
    assert int(row["errors"]) > 0 and row["requests"] == "0"
    assert files_in(tmp_path) == {"load_bdt.csv", "load_bdt.md", "load_bdt.png"}
