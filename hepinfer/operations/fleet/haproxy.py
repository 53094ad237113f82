"""HAProxy in front of the replicas: one gRPC (HTTP/2) address, requests balanced one by one to the
replica with the fewest in flight (``balance leastconn``), health checks on readiness.

Replicas join and leave at run time through HAProxy's runtime API (the admin socket in the run
directory), never by a reload, so no client connection is dropped:

* join: ``add server replicas/rN 127.0.0.1:<grpc> proto h2 check port <http> check-proto h1 ...``
  (h2 to tritonserver's gRPC port, the health check ``GET /v2/health/ready`` in HTTP/1 on its HTTP
  port), then ``enable health`` and ``enable server``;
* leave: ``set server replicas/rN state drain`` (no new requests; those in flight finish), wait
  until ``show stat`` counts no current stream on it, ``state maint``, ``del server``.

A request whose replica died before answering, or refused the connection, is sent again to another
replica (``retry-on`` with ``option redispatch``); health checks take a dead replica out within
``fall x inter``.  A second, loopback-only frontend serves HAProxy's Prometheus exporter
(``/metrics``) and its stats page (``/``).
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hepinfer.errors import ConfigError, ServerError
from hepinfer.operations.fleet.admission import SATURATED_VALUE, AdmissionOptions, frontend_rules, lua_services
from hepinfer.operations.fleet.processes import GuardedProcess, find_binary
from hepinfer.serving.ports import free_ports

FRONTEND, BACKEND = "grpc", "replicas"


@dataclass(frozen=True)
class Checks:
    """Health checks of each replica: every ``inter_ms``; down after ``fall`` failures, up after ``rise``."""

    inter_ms: int = 500
    fall: int = 2
    rise: int = 1

    def server_args(self, http_port: int) -> str:
        return f"check port {http_port} check-proto h1 inter {self.inter_ms}ms fall {self.fall} rise {self.rise}"


def render_config(
    *, run_dir: Path, host: str, port: int, stats_port: int, admission: AdmissionOptions, tls_pem: Path | None
) -> str:
    bind = f"ssl crt {tls_pem} alpn h2" if tls_pem else "proto h2"
    rules = frontend_rules(admission, str(run_dir / "saturated.acl"))
    lines = [
        "# HAProxy configuration of a hepinfer fleet, written by hepinfer.operations.fleet each time it starts",
        f"# HAProxy (edits are lost).  Run directory: {run_dir}",
        "# Clients speak gRPC (HTTP/2) to the frontend 'grpc'.  Requests are balanced one by one, to the",
        "# replica with the fewest in flight, over the backend 'replicas'.  Its servers (tritonserver",
        "# replicas) are added and removed at run time through the runtime API on the admin socket",
        "# (add server / set server ... state drain / del server): none is listed here.",
        "",
        "global",
        f"    stats socket {run_dir / 'haproxy.sock'} mode 600 level admin",
        f"    lua-load {run_dir / 'refusals.lua'}  # the gRPC refusals of the admission rules",
        "    log stderr format short local0 info",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlog-normal  # only failed or refused requests are logged",
        "    timeout connect 2s",
        "    timeout client 300s",
        "    timeout server 300s",
        "    # a request whose replica refused the connection or died before answering goes to another one",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "",
        f"frontend {FRONTEND}",
        f"    bind {'[' + host + ']' if ':' in host else host}:{port} {bind}",
        *[f"    {line}" for line in rules],
        f"    default_backend {BACKEND}",
        "",
        "frontend stats  # loopback only: HAProxy's Prometheus exporter and its stats page",
        f"    bind 127.0.0.1:{stats_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        "",
        f"backend {BACKEND}",
        "    balance leastconn",
        "    option httpchk GET /v2/health/ready  # each server: check port <replica's HTTP port> check-proto h1",
        "",
    ]
    return "\n".join(lines)


class Haproxy:
    """The fleet's HAProxy: ``start()``, the runtime API (``command``), ``stop()``."""

    def __init__(
        self,
        run_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admission: AdmissionOptions | None = None,
        checks: Checks | None = None,
        tls_pem: Path | None = None,
    ):
        self.binary = find_binary("haproxy")
        self.run_dir, self.host, self.port = Path(run_dir), host, port
        self.admission, self.checks, self.tls_pem = admission or AdmissionOptions(), checks or Checks(), tls_pem
        self.stats_port = 0
        self.process: GuardedProcess | None = None
        self.saturated = False

    config_path = property(lambda self: self.run_dir / "haproxy.cfg")
    socket_path = property(lambda self: self.run_dir / "haproxy.sock")
    log_path = property(lambda self: self.run_dir / "haproxy.log")

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/"

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.stats_port}"

    def start(self) -> Haproxy:
        """Write the config, check it (``haproxy -c``), start HAProxy; free ports are taken for the
        ports that are 0 (retried on a lost race).  A restart keeps the ports it had."""
        fixed = self.port != 0
        (self.run_dir / "saturated.acl").write_text("")
        (self.run_dir / "refusals.lua").write_text(lua_services())
        self.saturated = False
        for attempt in range(3):
            if not self.port or not self.stats_port:
                port, stats = free_ports(self.host, 2)  # the stats frontend binds 127.0.0.1
                self.port, self.stats_port = self.port or port, self.stats_port or stats
            self.config_path.write_text(
                render_config(
                    run_dir=self.run_dir,
                    host=self.host,
                    port=self.port,
                    stats_port=self.stats_port,
                    admission=self.admission,
                    tls_pem=self.tls_pem,
                )
            )
            env = {**os.environ, **self.admission.environment()}
            check = subprocess.run(
                [str(self.binary), "-c", "-f", str(self.config_path)], capture_output=True, text=True, env=env
            )
            if check.returncode != 0:
                raise ConfigError(f"HAProxy refuses {self.config_path}: {(check.stdout + check.stderr).strip()}")
            cmd = [self.binary, "-db", "-f", self.config_path]
            self.process = GuardedProcess("haproxy", cmd, self.log_path, self.run_dir, env).start()
            if self._wait_ready():
                return self
            tail = self.process.log_tail()
            self.process.stop()
            if "cannot bind" not in tail.lower() or fixed or attempt == 2:
                raise ServerError(f"haproxy did not start (port {self.port}); log {self.log_path}:\n{tail}")
            self.port = self.stats_port = 0
        return self  # pragma: no cover

    def _wait_ready(self, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.is_running():
            try:
                if "Name: HAProxy" in self.command("show info"):
                    return True
            except ServerError:
                pass
            time.sleep(0.05)
        return False

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    # -- the runtime API ---------------------------------------------------------------------------
    def command(self, line: str, timeout_s: float = 5.0) -> str:
        """Send one runtime-API command over the admin socket; its answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout_s)
                s.connect(str(self.socket_path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as err:
            raise ServerError(f"HAProxy's runtime API ({self.socket_path}) did not answer {line!r}: {err}") from None
        return b"".join(chunks).decode(errors="replace")

    def _expect(self, line: str, *answers: str) -> str:
        out = self.command(line)
        if not any(a in out for a in answers):
            raise ServerError(f"HAProxy refused {line!r}: {out.strip() or 'no answer'}")
        return out

    def add_server(self, name: str, grpc_port: int, http_port: int) -> None:
        """Put a replica into rotation (health-checked from now on)."""
        where = f"{BACKEND}/{name}"
        args = f"127.0.0.1:{grpc_port} proto h2 {self.checks.server_args(http_port)}"
        self._expect(f"add server {where} {args}", "New server registered")
        self.command(f"enable health {where}")
        self.command(f"enable server {where}")

    def drain(self, name: str) -> None:
        """No new request goes to ``name``; those in flight finish."""
        self.command(f"set server {BACKEND}/{name} state drain")

    def in_flight(self, name: str) -> int | None:
        """Requests ``name`` has now (queued at HAProxy or sent), None when HAProxy does not know it."""
        row = self.stats().get(name)
        return None if row is None else int(row.get("scur") or 0) + int(row.get("qcur") or 0)

    def wait_drained(self, name: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while (n := self.in_flight(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not n

    def remove_server(self, name: str, timeout_s: float = 5.0) -> bool:
        """Take ``name`` out for good (maintenance, then deleted); False when HAProxy kept it (then
        it stays in maintenance: it gets no request)."""
        where = f"{BACKEND}/{name}"
        self.command(f"set server {where} state maint")
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.command(f"del server {where}")
            if "deleted" in out or "No such server" in out:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def stats(self, proxy: str = BACKEND) -> dict[str, dict[str, str]]:
        """``show stat`` of one proxy: {server name (or FRONTEND / BACKEND): its row}."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname") == proxy}

    def set_saturated(self, saturated: bool) -> None:
        """Raise or clear the saturation guard of the frontend (the ACL file of :mod:`.admission`):
        while raised, new sessions (``RepositoryIndex``) are refused and every other call passes."""
        if saturated == self.saturated or not self.admission.saturation:
            return
        acl = self.run_dir / "saturated.acl"
        self.command(f"add acl {acl} {SATURATED_VALUE}" if saturated else f"clear acl {acl}")
        self.saturated = saturated
