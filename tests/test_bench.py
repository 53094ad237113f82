"""`hepinfer bench peer` runs against the real server and coffea.ml_tools, both giving the same scores.
(Figures are printed by the bench; no test asserts a speed.)"""

import csv

import pytest

from hepinfer.app.bench.peer import run_peer
from hepinfer.cli import main

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_peer_quick(generated, tmp_path):
    result = run_peer(
        "particlenet",
        files=[generated["ttbar"], generated["qcd"]],
        events_per_chunk=50,
        instances=1,
        repeats=1,
        max_chunks=2,
        out_dir=tmp_path,
    )
    assert result.chunks == 2 and result.jets > 0 and result.events == 100
    assert result.max_abs_diff <= 1e-5  # the same scores through both clients
    assert result.hepinfer_s > 0 and result.coffea_s > 0
    with open(tmp_path / "peer.csv") as f:
        row = next(csv.DictReader(f))
    assert int(row["jets"]) == result.jets and float(row["ratio"]) == pytest.approx(result.ratio, rel=1e-3)
    assert "coffea.ml_tools events/s" in (tmp_path / "peer.md").read_text()
    assert (tmp_path / "peer.png").read_bytes().startswith(b"\x89PNG")


def test_bench_command(generated, tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "peer",
                "--quick",
                "--input",
                str(generated["ttbar"]),
                "--events-per-chunk",
                "50",
                "--server-instances",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "hepinfer / coffea.ml_tools =" in capsys.readouterr().out
    assert (tmp_path / "peer.csv").is_file()


def test_models_study_quick(tmp_path, artefacts):
    from hepinfer.app.bench.models import ceiling, run_models

    rows = run_models(models=("bdt",), batches=(1, 8), concurrency=(1, 2), duration_s=0.2, out_dir=tmp_path)
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
    assert {p.name for p in tmp_path.iterdir()} == {"models.csv", "models.md", "models.png"}


def test_configs_study_quick(tmp_path, artefacts):
    from hepinfer.app.bench.configs import CONFIGS, batching_gain, run_configs

    rows = run_configs(models=("bdt",), batch=2, concurrency=4, duration_s=0.3, out_dir=tmp_path)
    assert [r["config"] for r in rows] == list(CONFIGS) and all(r["calls"] > 0 for r in rows)
    assert set(batching_gain(rows)) == {"bdt"}
    assert "dynamic batching" in (tmp_path / "configs.md").read_text()
    assert (tmp_path / "configs.png").read_bytes().startswith(b"\x89PNG")


def test_workers_study_quick(generated, tmp_path):
    from hepinfer.app.bench.workers import run_workers

    rows = run_workers(files=[generated["ttbar"]], workers=(1,), models=("bdt",), chunksize=75, out_dir=tmp_path)
    assert [(r["workers"], r["mode"]) for r in rows] == [(1, "local"), (1, "remote")]
    assert all(r["events"] == 150 and r["events_per_s"] > 0 for r in rows)
    local, remote = rows
    assert local["requests"] == 0 and remote["requests"] >= 2  # the metrics see only the remote run's requests
    assert (tmp_path / "workers.png").is_file() and (tmp_path / "workers.csv").is_file()


def test_perf_analyzer_study_quick(tmp_path, artefacts):
    """Triton's own perf_analyzer (from the tritonclient 2.51.0 wheel, libraries from the server
    environment) measures the same server as hepinfer's harness."""
    from hepinfer.app.bench.perf_analyzer import agreement, ensure_perf_analyzer, run_perf_analyzer

    assert ensure_perf_analyzer().is_file()
    rows = run_perf_analyzer(models=("bdt",), batches=(16,), concurrency=(1,), duration_s=0.5, out_dir=tmp_path)
    assert [r["tool"] for r in rows] == ["perf_analyzer", "hepinfer"]
    assert all(r["rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in rows)
    assert set(agreement(rows)) == {("bdt", 16, 1)}
    assert {p.name for p in tmp_path.iterdir()} == {"perf_analyzer.csv", "perf_analyzer.md", "perf_analyzer.png"}


def test_shm_study_quick(tmp_path, artefacts):
    """System shared memory gives the same outputs as gRPC (checked inside) and leaves no region."""
    import os

    from hepinfer.app.bench.shm import gains, run_shm

    rows = run_shm(models=("bdt",), duration_s=0.3, out_dir=tmp_path)
    assert [r["transport"] for r in rows] == ["grpc", "system shm"] and set(gains(rows)) == {"bdt"}
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"hepinfer-{os.getpid()}-")]
    assert {p.name for p in tmp_path.iterdir()} == {"shm.csv", "shm.md", "shm.png"}


def test_load_study_quick(tmp_path, artefacts):
    from hepinfer import ConfigError
    from hepinfer.app.bench.load import run_load

    row = run_load(model="bdt", batch=8, clients=2, seconds=1.0, out_dir=tmp_path)
    assert row["errors"] == 0 and row["requests"] > 10 and row["p99_ms"] >= row["p50_ms"] > 0
    assert row["server_rss_mb_before"] > 50 and row["server_rss_mb_peak"] >= row["server_rss_mb_before"]
    assert {p.name for p in tmp_path.iterdir()} == {"load_bdt.csv", "load_bdt.md", "load_bdt.png"}
    with pytest.raises(ConfigError, match="loopback"):
        run_load(url="grpc://192.0.2.1:8001", seconds=1)
    with pytest.raises(ConfigError, match="clients"):
        run_load(clients=1000, seconds=1)
