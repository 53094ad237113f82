"""The fleet's ``prometheus.yml`` (hepinfer.operations.fleet.prometheus): written with ``yaml.safe_dump``, so a
run directory whose name holds a quote and a colon gives a file that Debian's promtool accepts and that
the real Prometheus loads, scraping the replicas named in the targets file beside it."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import yaml

from hepinfer.operations.fleet.prometheus import Prometheus, config, render_config, write_targets

AWKWARD = 'it\'s a "run": dir #1'  # a quote of each kind, a colon and a comment sign


def _render(run_dir):
    return render_config(
        run_dir=run_dir,
        scrape_interval_s=0.5,
        targets_file=run_dir / "targets.json",
        haproxy="127.0.0.1:9101",
        fleet="127.0.0.1:9102",
    )


def test_the_config_reads_back_as_written_for_a_directory_with_quotes_and_a_colon(tmp_path):
    run_dir = tmp_path / AWKWARD
    run_dir.mkdir()
    parsed = yaml.safe_load(_render(run_dir))
    expected = config(
        scrape_interval_s=0.5, targets_file=run_dir / "targets.json", haproxy="127.0.0.1:9101", fleet="127.0.0.1:9102"
    )
    assert parsed == expected
    assert parsed["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(run_dir / "targets.json")]
    assert parsed["global"]["scrape_interval"] == "500ms"
    assert [job["job_name"] for job in parsed["scrape_configs"]] == ["triton", "haproxy", "hepinfer-fleet"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_config_of_a_directory_with_quotes_and_a_colon(tmp_path):
    run_dir = tmp_path / AWKWARD
    run_dir.mkdir()
    write_targets(run_dir / "targets.json", {"r1": 9001})
    path = run_dir / "prometheus.yml"
    path.write_text(_render(run_dir))
    done = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)")
def test_prometheus_reads_the_targets_file_of_a_directory_with_quotes_and_a_colon(tmp_path):
    run_dir = tmp_path / AWKWARD
    run_dir.mkdir()
    prom = Prometheus(run_dir, haproxy="127.0.0.1:9", scrape_interval_s=0.5)
    write_targets(prom.targets_path, {"r1": 9, "r2": 10})  # nothing listens: the targets are down, but known
    prom.start()
    try:
        deadline = time.monotonic() + 30
        replicas = set()
        while time.monotonic() < deadline and replicas != {"r1", "r2"}:
            replicas = {labels.get("replica") for labels, _ in prom.query('up{job="triton"}')}
            time.sleep(0.2)
        assert replicas == {"r1", "r2"}, f"Prometheus scrapes {replicas} from {prom.targets_path}"
    finally:
        prom.stop()
