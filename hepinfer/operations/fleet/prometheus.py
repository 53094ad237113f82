"""Prometheus watching the fleet: every replica's tritonserver metrics (job ``triton``, one target per
replica, labelled ``replica="rN"``), HAProxy's exporter (job ``haproxy``) and the fleet's own metrics
(job ``hepinfer-fleet``), scraped every second by default.

Replicas come and go through file-based service discovery: the fleet rewrites ``targets.json``
atomically (write, then rename) and Prometheus picks the change up without a restart.  Its data
directory is ``prometheus/`` in the fleet's run directory; it listens on a free loopback port.
The autoscaler reads it through the HTTP API (``/api/v1/query``), :meth:`Prometheus.query`.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from hepinfer.errors import ServerError, ServerUnavailable
from hepinfer.operations.fleet.chart import yaml_module
from hepinfer.operations.fleet.processes import GuardedProcess, find_binary
from hepinfer.serving.ports import free_ports

TRITON_JOB = "triton"


class PrometheusUnreachable(ServerUnavailable):
    """The fleet's Prometheus does not answer (stopped, killed, or still starting)."""


def duration(seconds: float) -> str:
    """A PromQL duration: ``15s``, ``2500ms``."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


HEADER = """\
# Prometheus configuration of a hepinfer fleet, written by hepinfer.operations.fleet each time it
# starts Prometheus (edits are lost).  Run directory: {run_dir}
# Job 'triton': one target per replica (tritonserver's metrics port), labelled replica=rN, read from
# the file_sd targets file that the fleet rewrites when a replica joins or leaves (no restart).
# Job 'haproxy': HAProxy's Prometheus exporter.  Job 'hepinfer-fleet': the autoscaler's own metrics.
"""


def config(*, scrape_interval_s: float, targets_file: Path, haproxy: str, fleet: str | None) -> dict:
    """Prometheus' configuration as a mapping (what :func:`render_config` writes)."""
    every = duration(scrape_interval_s)
    jobs = [
        {"job_name": TRITON_JOB, "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}]},
        {"job_name": "haproxy", "static_configs": [{"targets": [haproxy]}]},
    ]
    if fleet:
        jobs.append({"job_name": "hepinfer-fleet", "static_configs": [{"targets": [fleet]}]})
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": jobs,
    }


def render_config(
    *, run_dir: Path, scrape_interval_s: float, targets_file: Path, haproxy: str, fleet: str | None
) -> str:
    """``prometheus.yml``: :func:`config` as YAML (``yaml.safe_dump``, so any path is quoted as it must be)."""
    body = config(scrape_interval_s=scrape_interval_s, targets_file=targets_file, haproxy=haproxy, fleet=fleet)
    text = yaml_module().safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return HEADER.format(run_dir=json.dumps(str(run_dir), ensure_ascii=False)) + text


def write_targets(path: Path, replicas: dict[str, int]) -> None:
    """The file_sd targets file: {replica name: tritonserver metrics port}; replaced atomically."""
    groups = [{"targets": [f"127.0.0.1:{port}"], "labels": {"replica": n}} for n, port in sorted(replicas.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(groups, indent=1) + "\n")
    os.replace(tmp, path)


class Prometheus:
    """The fleet's Prometheus: ``start()``, ``query(expr)``, ``stop()``."""

    def __init__(self, run_dir: Path, *, haproxy: str, fleet: str | None = None, scrape_interval_s: float = 1.0):
        self.binary = find_binary("prometheus")
        self.run_dir, self.haproxy, self.fleet = Path(run_dir), haproxy, fleet
        self.scrape_interval_s = scrape_interval_s
        self.port = 0
        self.process: GuardedProcess | None = None

    config_path = property(lambda self: self.run_dir / "prometheus.yml")
    targets_path = property(lambda self: self.run_dir / "targets.json")
    log_path = property(lambda self: self.run_dir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Prometheus:
        """Start Prometheus (a restart keeps its port and its data); ready when ``/-/ready`` answers."""
        if not self.targets_path.exists():
            write_targets(self.targets_path, {})
        self.config_path.write_text(
            render_config(
                run_dir=self.run_dir,
                scrape_interval_s=self.scrape_interval_s,
                targets_file=self.targets_path,
                haproxy=self.haproxy,
                fleet=self.fleet,
            )
        )
        for attempt in range(3):
            self.port = self.port or free_ports("127.0.0.1", 1)[0]
            cmd = [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ]
            self.process = GuardedProcess("prometheus", cmd, self.log_path, self.run_dir).start()
            deadline = time.monotonic() + timeout_s
            while self.process.is_running() and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:  # noqa: S310
                        if resp.status == 200:
                            return self
                except OSError:
                    pass
                time.sleep(0.1)
            tail = self.process.log_tail()
            self.process.stop()
            if "address already in use" not in tail or attempt == 2:
                raise ServerError(f"prometheus did not start (port {self.port}); log {self.log_path}:\n{tail}")
            self.port = 0
        return self  # pragma: no cover

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def query(self, expr: str, timeout_s: float = 2.0) -> list[tuple[dict[str, str], float]]:
        """An instant query: [(labels, value)] (NaN and infinities as they come); PrometheusUnreachable
        when Prometheus does not answer, ServerError when it refuses the query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - our own loopback URL
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            raise ServerError(f"Prometheus at {self.url} refused the query {expr!r}: {err.read()[:300]!r}") from None
        except (OSError, ValueError) as err:
            raise PrometheusUnreachable(f"Prometheus at {self.url} does not answer: {err}") from None
        if body.get("status") != "success":
            raise ServerError(f"Prometheus at {self.url}: query {expr!r} failed: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def scalar(self, expr: str) -> float | None:
        """The single value of ``expr`` (summed when it has several series); None when there is no
        series yet; NaN (no request in the window) read as 0."""
        rows = self.query(expr)
        if not rows:
            return None
        return sum(v for _, v in rows if not math.isnan(v))
