"""The fleet's autoscaler: a thread that reads a load metric from the fleet's Prometheus and sets the
number of replicas, and raises HAProxy's saturation guard while the load is above a ceiling.

Two metrics, both from SuperSONIC (the CMS / ATLAS inference-as-a-service deployment on Kubernetes):

``in_flight`` (SuperSONIC's current default): the replicas' worth of work in flight,
    ``R_needed = L_in_flight / max(L_executing / R, 1)``, where ``L_in_flight`` is the mean number
    of requests inside the replicas (queued or executing: ``rate(nv_inference_request_duration_us)``
    in seconds per second, Little's law), ``L_executing`` the mean number executing (request minus
    queue duration) and ``R`` the replicas in rotation.  Scaling wants ``ceil(R_needed / threshold)``
    replicas (threshold 2, as KEDA's AverageValue target); the saturation guard compares
    ``R_needed / R`` with its ceiling (3 in SuperSONIC: ``admission_ratio`` 1.5 x the threshold).
    SuperSONIC reads ``L_in_flight`` at its Envoy proxy; here it is read at the replicas, so the
    time requests spend in HAProxy and on the network is not counted.
``queue_time`` (SuperSONIC's earlier default): milliseconds of queue per execution,
    ``rate(nv_inference_queue_duration_us[W]) / (rate(nv_inference_exec_count[W]) * 1000 + 0.001)``,
    summed over replicas and models; scaling wants ``ceil(R * value / threshold)`` replicas
    (threshold 100 ms, as an HPA Value target: more replicas above 100 ms).

Defaults follow SuperSONIC's chart: metric window 1 min (``in_flight``) or 15 s (``queue_time``),
a decision every 30 s, one replica per step, 120 s of stabilisation after a scale-up before the
next one (``up_cooldown_s``) and after any scale event before a scale-down (``down_cooldown_s``),
10 % tolerance around the target (Kubernetes' HPA).  The metric itself (and the saturation guard) is
read every ``tick_s``.

When Prometheus does not answer, the autoscaler holds the current size, records
``hold: prometheus unreachable`` and lowers the saturation guard (the front fails open).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass

from hepinfer.errors import ConfigError, ServerError
from hepinfer.logs import get_logger
from hepinfer.operations.fleet.prometheus import TRITON_JOB, Prometheus, PrometheusUnreachable, duration

log = get_logger(__name__)
METRICS = ("in_flight", "queue_time")
DEFAULTS = {"in_flight": {"threshold": 2.0, "window_s": 60.0}, "queue_time": {"threshold": 100.0, "window_s": 15.0}}
_J = f'{{job="{TRITON_JOB}"}}'  # the replicas' series


def queue_time_query(w: str) -> str:
    """SuperSONIC's earlier default: ms of queue per execution over the window ``w``."""
    return (
        f"sum(rate(nv_inference_queue_duration_us{_J}[{w}]))"
        f" / (sum(rate(nv_inference_exec_count{_J}[{w}])) * 1000 + 0.001)"
    )


def in_flight_queries(w: str) -> tuple[str, str]:
    """Mean requests inside the replicas (queued or executing), and mean requests executing."""
    inside = f"sum(rate(nv_inference_request_duration_us{_J}[{w}]))"
    return f"{inside} / 1e6", f"({inside} - sum(rate(nv_inference_queue_duration_us{_J}[{w}]))) / 1e6"


@dataclass(frozen=True)
class AutoscalerSettings:
    """How the fleet scales; ``threshold`` and ``window_s`` default per metric (see the module).
    ``scale=False``: a fixed size (the metric is still read, for the status and the guard);
    ``admission_ratio=None``: no saturation guard."""

    metric: str = "in_flight"
    threshold: float | None = None
    window_s: float | None = None
    admission_ratio: float | None = 1.5
    poll_s: float = 30.0
    up_cooldown_s: float = 120.0
    down_cooldown_s: float = 120.0
    step: int = 1
    tolerance: float = 0.1
    tick_s: float = 1.0
    scale: bool = True

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"autoscaler metric must be one of {METRICS}, got {self.metric!r}")
        for name, value in DEFAULTS[self.metric].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("threshold", "window_s", "poll_s", "tick_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"autoscaler {name} must be > 0, got {getattr(self, name)}")
        for name in ("up_cooldown_s", "down_cooldown_s", "tolerance"):
            if getattr(self, name) < 0:
                raise ConfigError(f"autoscaler {name} must be >= 0, got {getattr(self, name)}")
        if self.admission_ratio is not None and not self.admission_ratio > 0:
            raise ConfigError(f"admission_ratio must be > 0 (or None: no guard), got {self.admission_ratio}")
        if not isinstance(self.step, int) or self.step < 1:
            raise ConfigError(f"autoscaler step must be an integer >= 1, got {self.step!r}")

    @property
    def ceiling(self) -> float | None:
        """The saturation guard's ceiling on the load per replica (None: no guard)."""
        return None if self.admission_ratio is None else self.admission_ratio * self.threshold

    def as_dict(self) -> dict:
        return {**asdict(self), "ceiling": self.ceiling}


def read_metric(prometheus: Prometheus, settings: AutoscalerSettings, replicas: int) -> float | None:
    """The scaling metric now (None: no samples yet)."""
    w = duration(settings.window_s)
    if settings.metric == "queue_time":
        return prometheus.scalar(queue_time_query(w))
    in_flight, executing = (prometheus.scalar(q) for q in in_flight_queries(w))
    if in_flight is None or executing is None:
        return None
    return in_flight / max(executing / max(replicas, 1), 1.0)


def load_per_replica(settings: AutoscalerSettings, value: float, replicas: int) -> float:
    """What the saturation guard compares with its ceiling."""
    return value / max(replicas, 1) if settings.metric == "in_flight" else value


@dataclass(frozen=True)
class Decision:
    """One decision of the autoscaler or the fleet's supervisor: ``action`` (up, down, hold, replace,
    restart, saturated, admitting), a short ``reason``, the metric ``value``, the replicas in
    rotation when it was taken and the ``target`` it set."""

    time: float
    action: str
    reason: str
    value: float | None
    replicas: int
    target: int
    detail: str = ""

    @property
    def text(self) -> str:
        return f"{self.action}: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


def decide(
    s: AutoscalerSettings, value: float, replicas: int, bounds: tuple[int, int], since_up: float, since_scale: float
) -> tuple[str, int, str, str]:
    """(action, target, reason, detail) for ``value`` with ``replicas`` in rotation; ``since_up`` /
    ``since_scale``: seconds since the last scale-up / scale event."""
    if s.metric == "in_flight":
        want, ratio = math.ceil(value / s.threshold), value / (s.threshold * max(replicas, 1))
    else:
        want, ratio = math.ceil(replicas * value / s.threshold), value / s.threshold
    low, high = bounds
    want = min(max(want, low), high)
    detail = f"{s.metric} {value:.3g}, threshold {s.threshold:g}, {replicas} replicas, wants {want}"
    if want == replicas:
        return "hold", replicas, "size fits the load", detail
    if abs(ratio - 1.0) <= s.tolerance and low <= replicas <= high:
        return "hold", replicas, "within tolerance", detail
    if want > replicas:
        if since_up < s.up_cooldown_s:
            return "hold", replicas, "cooling down after a scale-up", detail
        return "up", min(replicas + s.step, want), f"{s.metric} above threshold", detail
    if since_scale < s.down_cooldown_s:
        return "hold", replicas, "cooling down before a scale-down", detail
    return "down", max(replicas - s.step, want), f"{s.metric} below threshold", detail


class Autoscaler(threading.Thread):
    """Reads the metric every ``tick_s`` (status, guard) and decides every ``poll_s``.  ``paused``:
    no scaling decision (the metric, the status and the guard go on)."""

    def __init__(self, fleet, settings: AutoscalerSettings):
        super().__init__(name="hepinfer-fleet-autoscaler", daemon=True)
        self.fleet, self.settings = fleet, settings
        self.value: float | None = None
        self.error: tuple[str, str] | None = None  # (reason, detail)
        self.paused = False
        self._halt = threading.Event()
        self._last_poll = -math.inf

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=60)

    def run(self) -> None:
        while not self._halt.wait(self.settings.tick_s):
            try:
                self.tick()
            except Exception as err:  # noqa: BLE001 - the loop must go on; the error is logged
                log.exception("fleet autoscaler: %s", err)

    def tick(self) -> None:
        s, fleet = self.settings, self.fleet
        replicas = fleet.serving_count()
        try:
            self.value, self.error = read_metric(fleet.prometheus, s, replicas), None
        except PrometheusUnreachable as err:
            self.value, self.error = None, ("prometheus unreachable", str(err))
        except ServerError as err:
            self.value, self.error = None, ("prometheus query failed", str(err))
        fleet.refresh(self.value, prometheus_up=self.error is None)
        if s.ceiling is None:
            fleet.set_saturated(False, self.value, None, math.inf)
        else:
            load = None if self.value is None else load_per_replica(s, self.value, replicas)
            fleet.set_saturated(load is not None and load > s.ceiling, self.value, load, s.ceiling)
        now = time.monotonic()
        if not s.scale or self.paused or now - self._last_poll < s.poll_s:
            return
        self._last_poll = now
        if self.error is not None:
            fleet.record("hold", *self.error, value=None)
            return
        if self.value is None:
            fleet.record("hold", "no samples yet", "Prometheus has no series of the replicas yet", value=None)
            return
        action, target, reason, detail = decide(
            s, self.value, replicas, fleet.bounds, now - fleet.last_up, now - fleet.last_scale
        )
        fleet.record(action, reason, detail, value=self.value, target=target)
        if action in ("up", "down"):
            fleet.scale_to(target)
