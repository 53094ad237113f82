"""What surrounds the serving fleet: the recorded history and its timeline (PNG and HTML), the
panel's fleet section, and ``hepinfer bench fleet`` against real fleets (HAProxy, Prometheus,
tritonserver replicas).  The values for SuperSONIC's Helm chart: tests/operations/test_supersonic.py."""

from __future__ import annotations

import csv
import json
import os
import time

import pytest

from hepinfer.cli import main


# -- the history and its timeline ------------------------------------------------------------------
def _doc(t, replicas, target, decisions=(), state="running", saturated=False):
    rows = [
        {"name": f"r{k + 1}", "state": "serving", "requests_per_s": 10.0, "queue_ms": 2.0 * (k + 1)}
        for k in range(replicas)
    ]
    return {
        "state": state,
        "pid": os.getpid(),
        "updated": t,
        "url": "grpc://127.0.0.1:1",
        "run_dir": None,
        "target": target,
        "min_replicas": 1,
        "max_replicas": 3,
        "models": ["bdt"],
        "autoscaler": {"metric": "in_flight", "value": 1.5, "threshold": 1.0, "saturated": saturated},
        "replicas": rows,
        "decisions": list(decisions),
    }


def _decision(t, action, target):
    return {
        "time": t,
        "action": action,
        "reason": "r",
        "value": 1.0,
        "replicas": 1,
        "target": target,
        "text": f"{action}: r",
    }


def _record(run_dir, t0=1_000.0):
    """A fleet's run written as the fleet writes it: status.json and its history, through write_status."""
    from hepinfer.operations.fleet.status import write_status

    run_dir.mkdir(parents=True, exist_ok=True)
    up, down = _decision(t0 + 2.1, "up", 2), _decision(t0 + 6.1, "down", 1)
    docs = [_doc(t0 + 0.5 * k, 1, 1) for k in range(4)]  # every 0.5 s: a line a second
    docs += [_doc(t0 + 2.2, 2, 2, [up]), _doc(t0 + 4.0, 2, 2, [up]), _doc(t0 + 6.2, 1, 1, [up, down])]
    docs += [_doc(t0 + 6.3, 1, 1, [up, down], state="stopped")]
    for doc in docs:
        doc["run_dir"] = str(run_dir)
        write_status(run_dir / "status.json", doc)
    return docs


def _inline_png(page: str) -> bytes:
    """The PNG an HTML timeline carries inline (its one image)."""
    import base64
    import re

    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return base64.b64decode(data)


def test_history_is_recorded_and_the_timeline_renders(tmp_path):
    from hepinfer.operations.fleet.timeline import read_history, timeline_html, write_png

    _record(tmp_path / "run")
    with open(tmp_path / "run" / "history.jsonl", "a") as f:
        f.write('{"time": 1010.0, "repl')  # a line cut short by a killed process
    timeline = read_history(tmp_path / "run")
    assert [s["time"] for s in timeline.samples] == [1000.0, 1001.0, 1002.2, 1004.0, 1006.2, 1006.3]
    assert [(d["action"], d["target"]) for d in timeline.decisions] == [("up", 2), ("down", 1)]
    assert [s["replicas"] for s in timeline.samples] == [1, 1, 2, 2, 1, 1]
    assert timeline.samples[2]["requests_per_s"] == 20.0 and timeline.samples[2]["queue_ms"] == 3.0  # weighted
    page = timeline_html(timeline, title="run <1>")
    assert "run &lt;1&gt;" in page and _inline_png(page).startswith(b"\x89PNG")
    assert "<td>up</td>" in page and "<td>down</td>" in page  # the table of decisions
    assert write_png(timeline, tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    assert [s["time"] for s in timeline.between(1001.5, 1005.0).samples] == [1002.2, 1004.0]


def test_fleet_status_timeline_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path / "home"))
    _record(tmp_path / "home" / "runs" / "fleet-20260101-000000-test")
    assert main(["fleet", "status", "--timeline", str(tmp_path / "out")]) == 0  # the newest fleet's
    assert "timeline of 6 samples" in capsys.readouterr().out
    assert (tmp_path / "out" / "timeline.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "out" / "timeline.html").read_text()
    assert _inline_png(page) and page.count("<td>up</td>") == 1  # the panels inline, a row per decision


# -- the panel's fleet section ---------------------------------------------------------------------
def test_panel_fleet_section_renders_from_a_status_document():
    from hepinfer.panel.fleet_view import fleet_html

    doc = _doc(time.time(), 2, 3, [_decision(time.time(), "up", 3)], saturated=True)
    page = fleet_html(doc)
    assert "data-replicas='2'" in page and "target 3" in page and "SATURATED" in page
    assert "<td>r1</td>" in page and "<td>r2</td>" in page and "up: r" in page
    assert fleet_html(None) == ""


def test_panel_shows_the_fleet_its_url_belongs_to(tmp_path, monkeypatch):
    from hepinfer import InferenceConfig, Session
    from hepinfer.panel import panel
    from hepinfer.panel.fleet_view import find_fleet

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    _record(tmp_path / "runs" / "fleet-20260101-000000-test")
    status = tmp_path / "runs" / "fleet-20260101-000000-test" / "status.json"
    doc = json.loads(status.read_text())
    status.write_text(json.dumps({**doc, "state": "running"}))  # this process plays the fleet's
    assert find_fleet("grpc://127.0.0.1:1")["target"] == 1 and find_fleet("grpc://127.0.0.1:2") is None
    p = panel(Session(InferenceConfig(mode="remote", url="grpc://127.0.0.1:1")), models=("bdt",), refresh_s=0)
    try:
        p.refresh()
        assert "hepinfer-fleet" in p.fleet.value and "<td>r1</td>" in p.fleet.value
        p.url.value = "grpc://127.0.0.1:2"
        p.refresh()
        assert p.fleet.value == ""
    finally:
        p.close()
    status.write_text(json.dumps({**doc, "state": "running", "pid": 2**22 + 12345}))  # a process that is gone
    assert find_fleet("grpc://127.0.0.1:1") is None


# -- the bench study against real fleets -----------------------------------------------------------
def _missing() -> list[str]:
    from hepinfer.operations.fleet.processes import missing_binaries

    return missing_binaries()


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.skipif(bool(_missing()), reason="haproxy or prometheus not installed (apt-get install haproxy prometheus)")
def test_bench_fleet_quick_runs_and_writes_its_files(tmp_path, artefacts):
    from hepinfer.operations.bench import run

    rows = run("fleet", quick=True, workers=(1,), duration_s=6.0, out_dir=tmp_path)
    assert [(r["setup"], r["workers"]) for r in rows] == [("fixed", 1), ("autoscaled", 1)]
    for r in rows:
        assert r["failures"] == 0 and r["calls"] > 0 and r["rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"]
        assert r["timeline"]["t"] and len(r["timeline"]["rows_per_s"]) == 6  # the fleet's history was recorded
    fixed, auto = rows
    assert fixed["replicas_max"] == 1 and fixed["scale_ups"] == 0
    assert 1 <= auto["replicas_max"] <= 3
    assert {p.name for p in tmp_path.iterdir()} == {"fleet.csv", "fleet.md", "fleet.png"}
    with open(tmp_path / "fleet.csv") as f:
        assert [r["setup"] for r in csv.DictReader(f)] == ["fixed", "autoscaled"]
    assert (tmp_path / "fleet.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.triton
def test_the_foreground_loop_ends_at_a_signal_or_when_its_service_stops(artefacts):
    """``hepinfer serve`` and ``hepinfer fleet up`` run one loop: a signal ends it with its number, a
    server whose tritonserver exits (killed here) with None; the service is stopped either way and
    the previous signal handlers are back."""
    import signal

    from hepinfer.serving.foreground import run_until_signal
    from hepinfer.serving.server import EmbeddedServer, ServerOptions

    before = signal.getsignal(signal.SIGTERM)
    server = EmbeddedServer(ServerOptions(models=["bdt"]))
    assert run_until_signal(server, on_ready=lambda s: os.kill(os.getpid(), signal.SIGTERM)) == signal.SIGTERM
    assert not server.is_running() and signal.getsignal(signal.SIGTERM) is before
    server = EmbeddedServer(ServerOptions(models=["bdt"]))
    assert run_until_signal(server, on_ready=lambda s: os.killpg(s.pid, signal.SIGKILL)) is None
    assert not server.is_running() and server.process is None


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.skipif(bool(_missing()), reason="haproxy or prometheus not installed (apt-get install haproxy prometheus)")
def test_fleet_up_writes_its_timeline_at_stop(tmp_path, artefacts):
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "hepinfer.cli", "fleet", "up", "--models", "bdt", "--replicas", "1", "--no-autoscale"]
    proc = subprocess.Popen(
        [*cmd, "--timeline", str(tmp_path / "at-stop")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        while not (lines and lines[-1].startswith("grpc://")):
            line = proc.stdout.readline()
            assert line, "hepinfer fleet up exited:\n" + "".join(lines)
            lines.append(line.strip())
        status_url = next(line.split()[1] for line in lines if line.startswith("status"))
        time.sleep(2.5)  # a few samples a second apart
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "hepinfer.cli",
                "fleet",
                "status",
                "--url",
                status_url,
                "--timeline",
                str(tmp_path / "live"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert _inline_png((tmp_path / "live" / "timeline.html").read_text()).startswith(b"\x89PNG")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "timeline of" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    from hepinfer.operations.fleet.timeline import read_history

    run_dir = next(line.split()[-1] for line in lines if line.startswith("run dir"))
    timeline = read_history(run_dir)
    assert len(timeline.samples) >= 3 and timeline.samples[-1]["state"] == "stopped"
    assert (tmp_path / "at-stop" / "timeline.png").read_bytes().startswith(b"\x89PNG")
