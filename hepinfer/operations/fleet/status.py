"""What a running fleet says about itself.

* ``status.json`` in the fleet's run directory, rewritten every autoscaler tick (1 s) and at each
  change, and the same document at ``GET /status`` on the fleet's status port (loopback): the URL,
  the replicas (state, ports, pid, log, HAProxy's view, requests/s, queue and compute time per
  request over the last 10 s), the autoscaler's settings, metric and guard, the front's counters and
  the recent decisions.  ``hepinfer fleet status`` reads it (:func:`read_status`).
* ``GET /metrics`` on the same port: the fleet's own metrics (prometheus_client), scraped by the
  fleet's Prometheus: ``hepinfer_fleet_replicas``, ``hepinfer_fleet_target_replicas``,
  ``hepinfer_fleet_scaling_metric{metric}``, ``hepinfer_fleet_saturated`` and
  ``hepinfer_fleet_decisions_total{action}``.
* ``history.jsonl`` beside ``status.json``: a line a second (replicas, target, requests/s, queue ms,
  the metric, the guard) and each new decision, appended while the fleet runs;
  :mod:`.timeline` reads it back.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ConfigError, ServerUnavailable
from hepinfer.operations.fleet.prometheus import TRITON_JOB, Prometheus, duration

STATUS_WINDOW_S = 10.0
HISTORY = "history.jsonl"  # beside status.json: one sample a second and every decision
HISTORY_EVERY_S = 1.0
_HISTORY_MARKS: dict[str, tuple[float, float]] = {}  # history file -> times of its last sample and decision
_J = f'{{job="{TRITON_JOB}"}}'


def replica_queries(w: str) -> dict[str, str]:
    """Per replica over the window ``w``: requests/s, and queue / compute ms per request."""

    def by_replica(counter: str) -> str:
        return f"sum by (replica) (rate({counter}{_J}[{w}]))"

    per_request = by_replica("nv_inference_request_success")
    return {
        "requests_per_s": per_request,
        "queue_ms": f"{by_replica('nv_inference_queue_duration_us')} / 1000 / {per_request}",
        "compute_ms": f"{by_replica('nv_inference_compute_infer_duration_us')} / 1000 / {per_request}",
    }


REPLICA_KEYS = tuple(replica_queries("1s"))


class FleetMetrics:
    """The fleet's own metrics, in a registry of their own."""

    def __init__(self):
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge
        except ImportError as err:
            raise ConfigError("the fleet's metrics need prometheus-client: pip install 'hepinfer[fleet]'") from err

        self.registry = CollectorRegistry()
        self.replicas = Gauge("hepinfer_fleet_replicas", "replicas in rotation", registry=self.registry)
        self.target = Gauge("hepinfer_fleet_target_replicas", "replicas the fleet aims at", registry=self.registry)
        self.metric = Gauge(
            "hepinfer_fleet_scaling_metric",
            "the autoscaler's metric at its last reading (NaN: none)",
            ["metric"],
            registry=self.registry,
        )
        self.saturated = Gauge("hepinfer_fleet_saturated", "1 while the front refuses requests", registry=self.registry)
        self.decisions = Counter(
            "hepinfer_fleet_decisions", "autoscaler and supervisor decisions", ["action"], registry=self.registry
        )

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def replica_stats(prometheus: Prometheus, window_s: float = STATUS_WINDOW_S) -> dict[str, dict[str, float | None]]:
    """{replica: {"requests_per_s", "queue_ms", "compute_ms"}} over the last ``window_s`` (per
    request; None when the replica served nothing)."""
    out: dict[str, dict[str, float | None]] = {}
    for key, expr in replica_queries(duration(window_s)).items():
        for labels, value in prometheus.query(expr):
            row = out.setdefault(labels.get("replica", "?"), dict.fromkeys(REPLICA_KEYS))
            row[key] = None if math.isnan(value) or math.isinf(value) else round(value, 3)
    return out


class StatusServer:
    """``GET /status`` (JSON) and ``GET /metrics`` (text) on a free loopback port."""

    def __init__(self, status, metrics: FleetMetrics):
        self.status, self.metrics = status, metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805 - the handler's own self
                if handler.path.split("?")[0] == "/metrics":
                    body, kind = metrics.text(), "text/plain; version=0.0.4"
                elif handler.path.split("?")[0] in ("/", "/status"):
                    body, kind = json.dumps(status(), indent=1).encode(), "application/json"
                else:
                    handler.send_error(404, "this fleet serves /status and /metrics")
                    return
                handler.send_response(200)
                handler.send_header("Content-Type", kind)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805 - quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hepinfer-fleet-status", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def status_document(fleet, replicas: list, backend: dict, front: dict, stats: dict, prometheus_up: bool) -> dict:
    """The status of ``fleet``: ``replicas`` (Replica), HAProxy's ``show stat`` rows of the backend
    and the frontend, the replicas' numbers from Prometheus (:func:`replica_stats`)."""
    o = fleet.options
    started = fleet.haproxy is not None and fleet.status_server is not None
    auto = fleet.autoscaler
    rows = []
    for r in replicas:
        row = backend.get(r.name, {})
        numbers = stats.get(r.name) or dict.fromkeys(REPLICA_KEYS)
        rows.append({**r.describe(), "haproxy": row.get("status"), "in_flight": int(row.get("scur") or 0), **numbers})
    return {
        "state": "running" if fleet.is_running() else "stopped",
        "pid": os.getpid(),
        "updated": time.time(),
        "url": fleet.url if started else None,
        "status_url": fleet.status_url if started else None,
        "metrics_url": fleet.metrics_url if started else None,
        "prometheus_url": fleet.prometheus.url if fleet.prometheus else None,
        "haproxy_stats_url": fleet.haproxy.stats_url if fleet.haproxy else None,
        "run_dir": str(fleet.run_dir) if fleet.run_dir else None,
        "models": list(o.server.models),
        "target": fleet.target,
        "min_replicas": o.min_replicas,
        "max_replicas": o.max_replicas,
        "autoscaler": {
            **(auto.settings if auto is not None else o.autoscaler).as_dict(),
            "value": None if auto is None or auto.value is None else round(auto.value, 4),
            "paused": bool(auto and auto.paused),
            "saturated": fleet.saturated,
            "prometheus_up": prometheus_up,
        },
        "admission": {
            "saturation": o.admission.saturation,
            "rate_limit": o.admission.rate_limit,
            "max_connections": o.admission.max_connections,
            "token": o.admission.token is not None,
        },
        "front": {
            "requests_total": int(front.get("req_tot") or 0),
            "refused_total": int(front.get("intercepted") or 0),
            "sessions": int(front.get("scur") or 0),
        },
        "replicas": rows,
        "decisions": [d.as_dict() for d in list(fleet.decisions)[-50:]],
    }


def write_status(path: Path, doc: dict) -> None:
    """``doc`` to ``path`` (atomically), and a line of the fleet's history beside it (:func:`append_history`)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    append_history(path.with_name(HISTORY), doc)


def history_sample(doc: dict) -> dict:
    """The fleet's numbers at one moment, from its status document: replicas in rotation, target, the
    replicas' requests/s summed, their queue ms per request (weighted by requests/s), the autoscaler's
    metric and the guard."""
    auto = doc.get("autoscaler", {})
    rows = [r for r in doc.get("replicas", []) if r.get("state") == "serving"]
    rates = [r["requests_per_s"] for r in rows if r.get("requests_per_s") is not None]
    queued = [
        (r["queue_ms"], r["requests_per_s"]) for r in rows if r.get("queue_ms") is not None and r.get("requests_per_s")
    ]
    weight = sum(w for _, w in queued)
    return {
        "time": doc.get("updated", time.time()),
        "state": doc.get("state"),
        "replicas": len(rows),
        "target": doc.get("target"),
        "requests_per_s": round(sum(rates), 3) if rates else None,
        "queue_ms": round(sum(q * w for q, w in queued) / weight, 3) if weight else None,
        "metric": auto.get("metric"),
        "value": auto.get("value"),
        "saturated": bool(auto.get("saturated")),
    }


def append_history(path: Path, doc: dict) -> None:
    """Append to ``history.jsonl`` a sample of ``doc`` (:func:`history_sample`) with the decisions taken
    since the previous line: at most one line per ``HISTORY_EVERY_S`` unless a decision or a stop is
    new.  ``hepinfer fleet status --timeline`` draws it (:mod:`.timeline`)."""
    key = str(path)
    last_sample, last_decision = _HISTORY_MARKS.get(key, (-math.inf, -math.inf))
    sample = history_sample(doc)
    new = [d for d in doc.get("decisions", []) if d.get("time", -math.inf) > last_decision]
    if not new and sample["state"] == "running" and sample["time"] - last_sample < HISTORY_EVERY_S:
        return
    sample["decisions"] = new
    with open(path, "a") as f:
        f.write(json.dumps(sample) + "\n")
    _HISTORY_MARKS[key] = (sample["time"], max([last_decision, *(d["time"] for d in new)]))


def find_status(run_dir: str | Path | None = None) -> Path:
    """``status.json`` of ``run_dir``, else of the newest fleet under ``$HEPINFER_HOME/runs``."""
    if run_dir is not None:
        path = Path(run_dir) / "status.json"
        if not path.is_file():
            raise ConfigError(f"{run_dir} is not a fleet's run directory: it has no status.json")
        return path
    found = sorted(paths.runs_dir().glob("fleet-*/status.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(f"no fleet has run under {paths.runs_dir()}: start one with `hepinfer fleet up`")
    return found[-1]


def read_status(url: str | None = None, run_dir: str | Path | None = None) -> dict:
    """A fleet's status document: from its status URL (``http://127.0.0.1:<port>``, as ``fleet up``
    prints it) or from its run directory (default: the newest fleet's)."""
    if url is not None:
        target = url.rstrip("/") + ("" if url.rstrip("/").endswith("/status") else "/status")
        try:
            with urllib.request.urlopen(target, timeout=5.0) as resp:  # noqa: S310 - a URL the user gave
                return json.load(resp)
        except OSError as err:
            raise ServerUnavailable(f"no fleet answers at {target}: {err}") from None
    doc = json.loads(find_status(run_dir).read_text())
    if doc.get("state") == "running" and not _alive(doc.get("pid")):
        doc["state"] = "gone (its process exited without stopping it)"
    return doc


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _num(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_status(doc: dict, decisions: int = 10) -> str:
    """The status document as the lines ``hepinfer fleet status`` prints."""
    auto = doc.get("autoscaler", {})
    front = doc.get("front", {})
    serving = sum(r["state"] == "serving" for r in doc.get("replicas", []))
    lines = [
        f"fleet {doc.get('url')}  ({doc.get('state')}, pid {doc.get('pid')}; run dir {doc.get('run_dir')})",
        f"  replicas {serving} in rotation, target {doc.get('target')} "
        f"(min {doc.get('min_replicas')}, max {doc.get('max_replicas')}); models {', '.join(doc.get('models', []))}",
        f"  metric   {auto.get('metric')} = {_num(auto.get('value'), '{:.3g}')} (threshold {auto.get('threshold')}, "
        f"guard ceiling {auto.get('ceiling')}); prometheus {'up' if auto.get('prometheus_up') else 'unreachable'}"
        f"; front {'SATURATED' if auto.get('saturated') else 'admitting'}",
        f"  front    {front.get('requests_total', 0)} requests, {front.get('refused_total', 0)} refused, "
        f"{front.get('sessions', 0)} open sessions",
        f"  {'replica':8} {'state':9} {'haproxy':8} {'in flight':>9} {'req/s':>8} {'queue ms':>9} "
        f"{'compute ms':>10}  gRPC",
    ]
    for r in doc.get("replicas", []):
        lines.append(
            f"  {r['name']:8} {r['state']:9} {r.get('haproxy') or '-':8} {r.get('in_flight') or 0:>9} "
            f"{_num(r.get('requests_per_s')):>8} {_num(r.get('queue_ms')):>9} {_num(r.get('compute_ms')):>10}  "
            f"{r.get('grpc')}"
        )
    recent = doc.get("decisions", [])[-decisions:]
    if recent:
        lines.append("  recent decisions:")
        for d in recent:
            stamp = time.strftime("%H:%M:%S", time.localtime(d["time"]))
            lines.append(f"    {stamp} {d['text']} -> {d['target']} replicas")
    return "\n".join(lines)
