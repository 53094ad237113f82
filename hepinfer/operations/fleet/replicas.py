"""The fleet's replicas: embedded Triton servers (:class:`~hepinfer.serving.server.EmbeddedServer`)
on free loopback ports, all serving the one repository the fleet wrote.

A replica is ``serving`` (in HAProxy's rotation), ``draining`` (taken out of rotation, its requests
in flight finishing) or ``gone`` (stopped, or found dead).  Each runs under the embedded server's
guard: it dies with the fleet's process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from hepinfer.serving.server import EmbeddedServer, ServerOptions


def replica_options(options: ServerOptions, repository: Path) -> ServerOptions:
    """What each replica runs: ``options`` on loopback, the shared ``repository`` and no TLS (the
    fleet's front terminates TLS); each replica takes free ports (FleetOptions refuses fixed ones)."""
    return replace(options, host="127.0.0.1", repository=Path(repository), tls_cert=None, tls_key=None)


@dataclass
class Replica:
    name: str
    server: EmbeddedServer
    state: str = "serving"
    started: float = field(default_factory=time.time)

    @property
    def ports(self) -> dict[str, int]:
        return self.server.ports

    def is_running(self) -> bool:
        return self.server.is_running()

    @property
    def exit_code(self) -> int | None:
        proc = self.server.process
        return proc.poll() if proc is not None else None

    def describe(self) -> dict:
        s = self.server
        return {
            "name": self.name,
            "state": self.state,
            "pid": s.pid,
            "grpc": s.url if s.ports else None,
            "http": s.http_url if s.ports else None,
            "metrics": s.metrics_url if s.ports else None,
            "log": str(s.log_path) if s.log_path else None,
            "started": self.started,
        }

    def stop(self) -> None:
        self.server.stop()


def start_replica(name: str, options: ServerOptions) -> Replica:
    """Start one replica (returns once tritonserver is ready and its metrics answer)."""
    return Replica(name, EmbeddedServer(options).start())
