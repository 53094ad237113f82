"""A fleet's settings: its size and bounds, its front door, its autoscaler, and the options of every
replica (:class:`~hepinfer.serving.server.ServerOptions`: models, engine, device, precision,
instances, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from hepinfer.errors import ConfigError
from hepinfer.models.spec import ModelSpec
from hepinfer.operations.fleet.admission import AdmissionOptions
from hepinfer.operations.fleet.autoscaler import AutoscalerSettings
from hepinfer.operations.fleet.haproxy import Checks
from hepinfer.serving.server import ServerOptions


@dataclass(frozen=True)
class FleetOptions:
    """``replicas`` to start with, kept within ``min_replicas``..``max_replicas`` by the autoscaler;
    ``host`` / ``port`` of the front (gRPC; port 0: a free one); ``server``: each replica's options
    (its ``tls_cert`` / ``tls_key`` go to the front, which terminates TLS; the replicas speak plain
    gRPC on loopback); ``drain_timeout_s``: how long a replica leaving the fleet may take to finish
    its requests; ``restart_after_s``: HAProxy or Prometheus found dead is restarted after this long."""

    server: ServerOptions = field(default_factory=ServerOptions)
    replicas: int = 2
    min_replicas: int = 1
    max_replicas: int = 4
    host: str = "127.0.0.1"
    port: int = 0
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    admission: AdmissionOptions = field(default_factory=AdmissionOptions)
    checks: Checks = field(default_factory=Checks)
    scrape_interval_s: float = 1.0
    drain_timeout_s: float = 30.0
    restart_after_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("replicas", "min_replicas", "max_replicas"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not 1 <= self.min_replicas <= self.replicas <= self.max_replicas:
            raise ConfigError(
                "need 1 <= min_replicas <= replicas <= max_replicas, got "
                f"{self.min_replicas}, {self.replicas}, {self.max_replicas}"
            )
        ports = ("grpc_port", "http_port", "metrics_port")
        fixed = {k: getattr(self.server, k) for k in ports if getattr(self.server, k)}
        if fixed:
            raise ConfigError(
                f"a fleet's replicas take free ports, got {fixed}: the fleet's own gRPC port is the `port` setting"
            )
        if not 0 <= self.port < 65536:
            raise ConfigError(f"the fleet's port must be in 0..65535, got {self.port}")
        for name in ("scrape_interval_s", "drain_timeout_s", "restart_after_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 s, got {getattr(self, name)}")

    @property
    def tls(self) -> bool:
        return self.server.tls_cert is not None

    @classmethod
    def build(cls, models=None, **kwargs) -> FleetOptions:
        """FleetOptions from keywords: the fleet's own fields, and ServerOptions fields for the replicas
        (``models``, ``engine``, ``device``, ``precision``, ``instances``, ...)."""
        own = {f.name for f in fields(cls)} - {"server"}
        server_fields = {f.name for f in fields(ServerOptions) if f.init}
        unknown = sorted(set(kwargs) - own - server_fields)
        if unknown:
            raise ConfigError(
                f"unknown fleet setting(s) {unknown}: fleet fields are {sorted(own)}, "
                f"replica fields those of ServerOptions"
            )
        server = {k: v for k, v in kwargs.items() if k not in own}
        if models is not None:
            server["models"] = (models,) if isinstance(models, str | ModelSpec) else tuple(models)
        return cls(server=ServerOptions(**server), **{k: v for k, v in kwargs.items() if k in own})
