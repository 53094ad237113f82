"""The fleet's supervisor: a thread that looks every 0.25 s and replaces what died.

* a replica that exited (killed, crashed) is taken out of HAProxy and of Prometheus' targets, and
  another is started in its place: decision ``replace``;
* HAProxy or Prometheus found dead for ``restart_after_s`` is restarted: decision ``restart``
  (HAProxy on the same port, with the replicas in rotation put back; Prometheus on the same port,
  with its data);
* while fewer replicas serve than the fleet's target, replicas are started; one that fails to start
  gives ``hold: a replica failed to start``, and the next try comes 5 s later.
"""

from __future__ import annotations

import threading
import time

from hepinfer.errors import HepinferError
from hepinfer.logs import get_logger

log = get_logger(__name__)
SUPERVISE_S = 0.25
START_RETRY_S = 5.0


class Supervisor(threading.Thread):
    def __init__(self, fleet, stopping: threading.Event):
        super().__init__(name="hepinfer-fleet-supervisor", daemon=True)
        self.fleet, self.stopping = fleet, stopping
        self._dead_since: dict[str, float] = {}
        self._retry_start_at = 0.0

    def run(self) -> None:
        while not self.stopping.wait(SUPERVISE_S):
            try:
                self.check()
            except Exception as err:  # noqa: BLE001 - the supervisor must go on; the error is logged
                log.exception("fleet supervisor: %s", err)

    def check(self) -> None:
        fleet = self.fleet
        for replica in fleet.serving():
            if not replica.is_running() and not self.stopping.is_set():
                code = replica.exit_code
                fleet.retire(replica, drain=False)
                fleet.record("replace", f"replica {replica.name} exited", f"exit code {code}", value=None)
        self.revive("haproxy", fleet.haproxy, self.restart_haproxy)
        self.revive("prometheus", fleet.prometheus, fleet.prometheus.start)
        if time.monotonic() < self._retry_start_at or not fleet.scaling_lock.acquire(blocking=False):
            return
        try:
            while fleet.serving_count() < fleet.target and not self.stopping.is_set():
                fleet.add_replica()
        except HepinferError as err:
            self._retry_start_at = time.monotonic() + START_RETRY_S
            fleet.record("hold", "a replica failed to start", str(err)[:300], value=None)
        finally:
            fleet.scaling_lock.release()
        fleet.publish()

    def revive(self, name: str, proc, restart) -> None:
        """Restart ``proc`` (HAProxy or Prometheus) once it has been dead for ``restart_after_s``."""
        if proc.is_running() or self.stopping.is_set():
            self._dead_since.pop(name, None)
            return
        first = self._dead_since.setdefault(name, time.monotonic())
        if time.monotonic() - first < self.fleet.options.restart_after_s:
            return
        code = proc.process.returncode if proc.process else None
        proc.stop()  # reaps what is left
        try:
            restart()
        except HepinferError as err:
            self._dead_since[name] = time.monotonic()  # the next attempt after restart_after_s
            self.fleet.record("hold", f"{name} failed to restart", str(err)[:300], value=None)
            return
        self._dead_since.pop(name, None)
        self.fleet.record("restart", f"{name} had exited", f"exit code {code}; restarted", value=None)

    def restart_haproxy(self) -> None:
        fleet = self.fleet
        fleet.haproxy.start()
        for replica in fleet.serving():
            fleet.haproxy.add_server(replica.name, replica.ports["grpc"], replica.ports["http"])
        if fleet.saturated:
            fleet.haproxy.set_saturated(True)
