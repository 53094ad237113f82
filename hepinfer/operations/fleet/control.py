"""The fleet: replicas of the embedded Triton server behind HAProxy on one gRPC URL, watched by
Prometheus, sized by the autoscaler (:mod:`.autoscaler`); the supervisor (:mod:`.supervisor`)
replaces what dies.  Every decision of the supervisor and the autoscaler goes to ``decisions``, the
log, the status and the fleet's metrics.
"""

from __future__ import annotations

import atexit
import logging
import math
import tempfile
import threading
import time
import warnings
import weakref
from collections import deque
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ConfigError, HepinferError, ServerError
from hepinfer.logs import get_logger
from hepinfer.operations.fleet.autoscaler import Autoscaler, Decision
from hepinfer.operations.fleet.fleet_options import FleetOptions
from hepinfer.operations.fleet.haproxy import BACKEND, FRONTEND, Haproxy
from hepinfer.operations.fleet.processes import find_binary
from hepinfer.operations.fleet.prometheus import Prometheus, write_targets
from hepinfer.operations.fleet.replicas import Replica, replica_options, start_replica
from hepinfer.operations.fleet.status import FleetMetrics, StatusServer, replica_stats, write_status
from hepinfer.operations.fleet.supervisor import Supervisor
from hepinfer.serving.repository import write_repository
from hepinfer.serving.server import EmbeddedServer
from hepinfer.urls import TritonUrl

log = get_logger(__name__)
_LIVE: weakref.WeakSet[Fleet] = weakref.WeakSet()
QUIET_HOLDS = {  # logged at INFO; other holds (Prometheus unreachable, a replica that cannot start) warn
    "size fits the load",
    "within tolerance",
    "cooling down after a scale-up",
    "cooling down before a scale-down",
    "no samples yet",
}  # after a replica failed to start, the supervisor tries again this much later


class Fleet:
    """``Fleet(models, replicas=2, min_replicas=1, max_replicas=4, **options)``: keywords are
    :class:`FleetOptions` fields or the replicas' ServerOptions fields (engine, device, instances, ...).
    A context manager; ``start()`` returns once every replica is in HAProxy's rotation."""

    def __init__(self, models=None, options: FleetOptions | None = None, **kwargs):
        if options is not None and (models is not None or kwargs):
            raise ConfigError("Fleet takes options or keywords, not both")
        self.options = options or FleetOptions.build(models, **kwargs)
        self.run_dir: Path | None = None
        self.haproxy: Haproxy | None = None
        self.prometheus: Prometheus | None = None
        self.replicas: dict[str, Replica] = {}
        self.target = self.options.replicas
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.metrics = FleetMetrics()
        self.autoscaler: Autoscaler | None = None
        self.status_server: StatusServer | None = None
        self.saturated = False
        self._stats: dict = {}
        self._prometheus_up = False
        self._replica_options = None
        self._lock = threading.RLock()
        self.scaling_lock = threading.Lock()
        self._publishing = threading.Lock()  # one writer of status.json at a time
        self._stopping = threading.Event()
        self._supervisor: Supervisor | None = None
        self._count = 0
        self._last_hold: tuple[str, str] | None = None
        # monotonic times of the last change of size (the start counts) and of the last increase: the
        # autoscaler's cool-downs run from them, whoever scaled (the autoscaler or scale_to by hand)
        self.last_scale = self.last_up = -math.inf

    # -- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The fleet's gRPC URL (``grpcs://`` when the front has TLS): what Scorer and tritonclient take."""
        host = self.options.host
        return f"{'grpcs' if self.options.tls else 'grpc'}://{f'[{host}]' if ':' in host else host}:{self.haproxy.port}"

    @property
    def status_url(self) -> str:
        return f"http://{self.status_server.address}/status"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.status_server.address}/metrics"

    @property
    def bounds(self) -> tuple[int, int]:
        return self.options.min_replicas, self.options.max_replicas

    def serving(self) -> list[Replica]:
        with self._lock:
            return [r for r in self.replicas.values() if r.state == "serving"]

    def serving_count(self) -> int:
        return len(self.serving())

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Fleet:
        o = self.options
        if self.run_dir is not None:
            raise ServerError("fleet already started")
        for binary in ("haproxy", "prometheus"):  # a missing binary is said before anything starts
            find_binary(binary)
        if not TritonUrl.parse(f"grpc://{'[' + o.host + ']' if ':' in o.host else o.host}:1").is_loopback:
            warnings.warn(f"the fleet listens on {o.host}: reachable from other machines", stacklevel=2)
        paths.runs_dir().mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("fleet-%Y%m%d-%H%M%S-"), dir=paths.runs_dir()))
        _LIVE.add(self)
        try:
            repository = o.server.repository or write_repository(
                self.run_dir / "repository", EmbeddedServer(o.server).repository_options()
            )
            self._replica_options = replica_options(o.server, repository)
            self.status_server = StatusServer(self.status, self.metrics).start()
            self.haproxy = Haproxy(
                self.run_dir, host=o.host, port=o.port, admission=o.admission, checks=o.checks, tls_pem=self._tls_pem()
            ).start()
            self.prometheus = Prometheus(
                self.run_dir,
                haproxy=self.haproxy.metrics_address,
                fleet=self.status_server.address,
                scrape_interval_s=o.scrape_interval_s,
            ).start()
            self._prometheus_up = True
            for _ in range(self.target):
                self.add_replica()
            self.last_scale = time.monotonic()
            self._supervisor = Supervisor(self, self._stopping)
            self._supervisor.start()
            self.autoscaler = Autoscaler(self, o.autoscaler)
            self.autoscaler.start()
        except BaseException:
            self.stop()
            raise
        self.publish()
        log.info("hepinfer fleet ready: %s (%d replicas; run dir %s)", self.url, self.serving_count(), self.run_dir)
        return self

    def _tls_pem(self) -> Path | None:
        """HAProxy takes the certificate and its key in one file (only the owner may read it)."""
        o = self.options.server
        if not self.options.tls:
            return None
        pem = self.run_dir / "front.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(Path(o.tls_cert).read_bytes().rstrip(b"\n") + b"\n" + Path(o.tls_key).read_bytes())
        return pem

    def is_running(self) -> bool:
        return self.run_dir is not None and not self._stopping.is_set()

    def stop(self) -> None:
        """Stop the threads, HAProxy, the replicas, Prometheus and the status endpoint."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        _LIVE.discard(self)
        if self.autoscaler is not None:
            self.autoscaler.stop()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=60)
        if self.haproxy is not None:
            self.haproxy.stop()
        for replica in list(self.replicas.values()):
            replica.stop()
            replica.state = "gone"
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.run_dir is not None:
            doc = self.status()
            with self._publishing:
                write_status(self.run_dir / "status.json", doc)
        if self.status_server is not None:
            self.status_server.stop()

    def __enter__(self) -> Fleet:
        return self if self.run_dir is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running url={self.url}" if self.is_running() and self.haproxy else "stopped"
        return f"<Fleet {state} replicas={self.serving_count()} models={list(self.options.server.models)}>"

    # -- membership --------------------------------------------------------------------------------
    def add_replica(self) -> Replica:
        """Start a replica and put it into HAProxy's rotation and Prometheus' targets."""
        with self._lock:
            self._count += 1
            name = f"r{self._count}"
        replica = start_replica(name, self._replica_options)
        try:
            self.haproxy.add_server(name, replica.ports["grpc"], replica.ports["http"])
        except BaseException:
            replica.stop()
            raise
        with self._lock:
            self.replicas[name] = replica
            self._write_targets()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self.haproxy.stats().get(name, {}).get("status", "").startswith("UP"):
                break
            time.sleep(0.05)
        log.info("fleet: replica %s in rotation (gRPC %s, pid %s)", name, replica.server.url, replica.server.pid)
        return replica

    def retire(self, replica: Replica, drain: bool) -> None:
        """Take ``replica`` out: drained first (no new request, those in flight finish), then stopped."""
        with self._lock:
            replica.state = "draining"
        try:
            if drain:
                self.haproxy.drain(replica.name)
                if not self.haproxy.wait_drained(replica.name, self.options.drain_timeout_s):
                    log.warning("fleet: %s still had requests after %s s", replica.name, self.options.drain_timeout_s)
            if not self.haproxy.remove_server(replica.name):
                log.warning("fleet: HAProxy kept %s (in maintenance: it gets no request)", replica.name)
        except ServerError as err:  # HAProxy down: the replica leaves anyway
            log.warning("fleet: taking %s out of HAProxy: %s", replica.name, err)
        replica.stop()
        with self._lock:
            replica.state = "gone"
            self.replicas.pop(replica.name, None)
            self._write_targets()
        log.info("fleet: replica %s stopped", replica.name)

    def _write_targets(self) -> None:
        ports = {r.name: r.ports["metrics"] for r in self.replicas.values() if r.state == "serving"}
        write_targets(self.run_dir / "targets.json", ports)

    def scale_to(self, n: int) -> int:
        """Start or drain replicas until ``n`` (kept within the bounds) are in rotation; returns it.
        A replica leaves by draining: no request fails because of a scale-down."""
        low, high = self.bounds
        n = min(max(int(n), low), high)
        with self.scaling_lock:
            with self._lock:
                self.target, before = n, self.serving_count()
            while self.serving_count() < self.target and not self._stopping.is_set():
                self.add_replica()
            while self.serving_count() > self.target and not self._stopping.is_set():
                self.retire(max(self.serving(), key=lambda r: r.started), drain=True)
            if n != before:
                self.last_scale = time.monotonic()
                self.last_up = self.last_scale if n > before else self.last_up
        self.publish()
        return n

    # -- decisions, guard, status -----------------------------------------------------------------
    def record(self, action: str, reason: str, detail: str = "", *, value: float | None, target=None) -> None:
        """Keep a decision (consecutive identical holds are kept once); log it; count it."""
        with self._lock:
            if action == "hold" and (action, reason) == self._last_hold:
                return
            self._last_hold = (action, reason) if action == "hold" else None
            target = self.target if target is None else target
            decision = Decision(time.time(), action, reason, value, self.serving_count(), target, detail)
            self.decisions.append(decision)
        self.metrics.decisions.labels(action).inc()
        quiet = action in ("up", "down", "admitting") or (action == "hold" and reason in QUIET_HOLDS)
        log.log(logging.INFO if quiet else logging.WARNING, "fleet: %s -> %d replicas", decision.text, target)

    def set_saturated(self, saturated: bool, value: float | None, load: float | None, ceiling: float) -> None:
        """Raise or lower the front's saturation guard (the autoscaler calls this every tick)."""
        if saturated == self.saturated or self.haproxy is None or not self.options.admission.saturation:
            return
        try:
            self.haproxy.set_saturated(saturated)
        except ServerError as err:
            log.warning("fleet: saturation guard: %s", err)
            return
        self.saturated = saturated
        if saturated:
            self.record("saturated", "load above the admission ceiling", f"{load:.3g} > {ceiling:g}", value=value)
        elif load is None:
            why = "the guard is off" if math.isinf(ceiling) else "no metric: the front fails open"
            self.record("admitting", why, value=value)
        else:
            self.record("admitting", "load back under the admission ceiling", f"{load:.3g} <= {ceiling:g}", value=value)

    def refresh(self, value: float | None, prometheus_up: bool) -> None:
        """The autoscaler's tick: the replicas' numbers from Prometheus, the metrics, the status file."""
        self._prometheus_up = prometheus_up
        if prometheus_up:
            try:
                self._stats = replica_stats(self.prometheus)
            except HepinferError:
                pass
        self.metrics.metric.labels(self.options.autoscaler.metric).set(math.nan if value is None else value)
        self.publish()

    def publish(self) -> None:
        """The fleet's gauges and its status file, brought up to date."""
        self.metrics.replicas.set(self.serving_count())
        self.metrics.target.set(self.target)
        self.metrics.saturated.set(int(self.saturated))
        if self.run_dir is not None and not self._stopping.is_set():
            doc = self.status()
            with self._publishing:
                write_status(self.run_dir / "status.json", doc)

    def status(self) -> dict:
        """The status document (see :mod:`.status`)."""
        from hepinfer.operations.fleet.status import status_document

        backend, front = {}, {}
        if self.haproxy is not None and self.haproxy.is_running():
            try:
                backend = self.haproxy.stats(BACKEND)
                front = self.haproxy.stats(FRONTEND).get("FRONTEND", {})
            except ServerError:
                pass
        with self._lock:
            replicas = list(self.replicas.values())
        return status_document(self, replicas, backend, front, self._stats, self._prometheus_up)


@atexit.register
def _stop_all() -> None:
    for fleet in list(_LIVE):
        fleet.stop()
