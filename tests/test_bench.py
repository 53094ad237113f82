"""`hepinfer bench peer` runs against the real server and coffea.ml_tools, both giving the same scores.
(Figures are printed by the bench; no test asserts a speed.)"""

import csv

import pytest

from hepinfer.bench.peer import run_peer
from hepinfer.cli import main

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_peer_quick(generated, tmp_path):
    result = run_peer("particlenet", files=[generated["ttbar"], generated["qcd"]], events_per_chunk=50,
                      instances=1, repeats=1, max_chunks=2, out_dir=tmp_path, log=lambda *_: None)
    assert result.chunks == 2 and result.jets > 0 and result.events == 100
    assert result.max_abs_diff <= 1e-5  # the same scores through both clients
    assert result.hepinfer_s > 0 and result.coffea_s > 0
    with open(tmp_path / "peer.csv") as f:
        row = next(csv.DictReader(f))
    assert int(row["jets"]) == result.jets and float(row["ratio"]) == pytest.approx(result.ratio, rel=1e-3)
    assert "coffea.ml_tools events/s" in (tmp_path / "peer.md").read_text()


def test_bench_command(generated, tmp_path, capsys):
    assert main(["bench", "peer", "--quick", "--input", str(generated["ttbar"]), "--events-per-chunk", "50",
                 "--server-instances", "1", "--out", str(tmp_path)]) == 0
    assert "hepinfer / coffea.ml_tools =" in capsys.readouterr().out
    assert (tmp_path / "peer.csv").is_file()


def test_models_study_quick(tmp_path, artefacts):
    from hepinfer.bench.models import ceiling, run_models

    rows = run_models(models=("bdt",), batches=(1, 8), concurrency=(1, 2), duration_s=0.2, out_dir=tmp_path,
                      log=lambda *_: None)
    paths = {(r["path"].split()[0], r["batch"], r["concurrency"]) for r in rows}
    assert paths == {("local", 1, 1), ("local", 8, 1), ("triton", 1, 1), ("triton", 1, 2), ("triton", 8, 1),
                     ("triton", 8, 2)}
    assert all(r["calls"] > 0 and r["rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert set(ceiling(rows)) == {"bdt"}
    assert {p.name for p in tmp_path.iterdir()} == {"models.csv", "models.md", "models.png"}


def test_configs_study_quick(tmp_path, artefacts):
    from hepinfer.bench.configs import CONFIGS, batching_gain, run_configs

    rows = run_configs(models=("bdt",), batch=2, concurrency=4, duration_s=0.3, out_dir=tmp_path, log=lambda *_: None)
    assert [r["config"] for r in rows] == list(CONFIGS) and all(r["calls"] > 0 for r in rows)
    assert set(batching_gain(rows)) == {"bdt"}
    assert "dynamic batching" in (tmp_path / "configs.md").read_text()


def test_workers_study_quick(generated, tmp_path):
    from hepinfer.bench.workers import run_workers

    rows = run_workers(files=[generated["ttbar"]], workers=(1,), models=("bdt",), chunksize=75, out_dir=tmp_path,
                       log=lambda *_: None)
    assert [(r["workers"], r["mode"]) for r in rows] == [(1, "local"), (1, "remote")]
    assert all(r["events"] == 150 and r["events_per_s"] > 0 for r in rows)
    local, remote = rows
    assert local["requests"] == 0 and remote["requests"] >= 2  # the metrics see only the remote run's requests
    assert (tmp_path / "workers.png").is_file() and (tmp_path / "workers.csv").is_file()
